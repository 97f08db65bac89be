"""The course's files and the nbgrader command line: the one module both the authoring/grading
side and the book's build need (paths, assignment stems, source notebooks, running `nbgrader`).

Low level on purpose: it imports nothing else of `bnlab`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOLUTIONS = REPO / "solutions"
NOTEBOOKS = REPO / "notebooks"
AUTOGRADER = REPO / "autograder"
BUILD = REPO / "_build"


def course_root() -> Path:
    """The nbgrader course root, as autograder/nbgrader_config.py computes it."""
    return Path(os.environ.get("BNLAB_COURSE_ROOT") or REPO / "_course").resolve()


def exchange_root(root: Path) -> Path:
    """nbgrader's exchange, as autograder/nbgrader_config.py computes it: `$BNLAB_EXCHANGE` (a
    folder shared with the learners, on a JupyterHub) or `exchange/` in the course root."""
    return Path(os.environ.get("BNLAB_EXCHANGE") or root / "exchange")


def _bin(name: str) -> str:
    """An executable of the running environment (the venv), falling back to PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def run(cmd: list[str], cwd: Path = REPO, env: dict | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    # nbgrader calls tools such as `alembic` by name: the venv's bin/ must come first on PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, "PATH": path, **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"bn-course: `{' '.join(cmd)}` failed with exit code {proc.returncode}")


def nbgrader(*args: str, root: Path | None = None) -> None:
    """Run a real `nbgrader` command with the course configuration."""
    env = {"BNLAB_COURSE_ROOT": str(root)} if root else None
    run([_bin("nbgrader"), *args], cwd=AUTOGRADER, env=env)


def stems() -> list[str]:
    return sorted(p.stem for p in SOLUTIONS.glob("[0-9][0-9]_*.py"))


def source_notebook(stem: str):
    """Read solutions/STEM.py (jupytext percent format) as a notebook with stable cell ids."""
    import jupytext

    nb = jupytext.read(SOLUTIONS / f"{stem}.py")
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        cell["id"] = grade_id or f"{stem}-{i:02d}"
        cell.metadata.pop("lines_to_next_cell", None)  # jupytext layout hint, not content
    return nb


def write_sources(root: Path, selected: list[str]) -> None:
    import nbformat

    for stem in selected:
        target = root / "source" / stem / f"{stem}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(source_notebook(stem), target)
