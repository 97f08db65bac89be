"""Building the Jupyter Book (learner and instructor editions)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bnlab.core.course import BUILD, REPO, _bin, run


def build_book(edition: str = "learner") -> Path:
    env = {"BNLAB_EDITION": edition}
    # jupyter-book writes to PATH_OUTPUT/_build/html: the learner edition to _build/html.
    out = REPO if edition == "learner" else BUILD / "instructor"
    learner_cache, own_cache = BUILD / ".jupyter_cache", out / "_build" / ".jupyter_cache"
    if edition != "learner" and learner_cache.is_dir() and not own_cache.exists():
        # Both editions execute the same code: start from the learner edition's outputs.
        shutil.copytree(learner_cache, own_cache)
    cmd = [_bin("jupyter-book"), "build", str(REPO), "--path-output", str(out)]
    run([*cmd, "--builder", "html", "-W", "-n", "--keep-going"], env=env)
    return out / "_build" / "html"
