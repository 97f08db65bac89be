"""Building the Jupyter Book: the learner, self-study and instructor editions."""

from __future__ import annotations

import shutil
from pathlib import Path

from bnlab.book.sphinx_ext import EDITIONS
from bnlab.core.course import BUILD, REPO, _bin, run


def output_folder(edition: str) -> Path:
    """Where jupyter-book writes an edition (it adds _build/html): the learner edition to
    _build/html, the others next to each other, _build/self-study and _build/instructor."""
    if edition not in EDITIONS:
        raise ValueError(f"unknown edition {edition!r}: one of {', '.join(EDITIONS)}")
    return REPO if edition == "learner" else BUILD / edition


def build_book(edition: str = "learner", path_output: Path | None = None) -> Path:
    """Build one edition; `path_output` (default: `output_folder(edition)`) for a private copy."""
    env = {"BNLAB_EDITION": edition}
    out = Path(path_output) if path_output is not None else output_folder(edition)
    learner_cache, own_cache = BUILD / ".jupyter_cache", out / "_build" / ".jupyter_cache"
    if out != REPO and learner_cache.is_dir() and not own_cache.exists():
        # All editions execute the same code: start from the learner edition's outputs.
        own_cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(learner_cache, own_cache)
    cmd = [_bin("jupyter-book"), "build", str(REPO), "--path-output", str(out)]
    run([*cmd, "--builder", "html", "-W", "-n", "--keep-going"], env=env)
    return out / "_build" / "html"
