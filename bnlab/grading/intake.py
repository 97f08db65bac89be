"""Intake of submissions: reject what cannot be graded, with a reason that names the file and the
fix, before nbgrader sees it.

Stock nbgrader aborts a whole `autograde` run on one notebook with a duplicated grade id, and
exports an unreadable submission as a 0 indistinguishable from a real one. Here every submission
is checked on its own; a bad one is set aside with its reason, the others are graded, and the
export says "not graded: <reason>" instead of a score.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 20 * 2**20  # a learner notebook is ~10 kB; outputs of a few MB are plausible


@dataclass
class Rejection:
    student: str
    assignment: str
    path: str
    reason: str

    def line(self) -> str:
        return f"{self.student}/{self.assignment}/{Path(self.path).name}: {self.reason}"


def _grade_ids(nb: dict) -> list[str]:
    return [
        c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for c in nb.get("cells", [])
        if isinstance(c, dict) and c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    ]


def _metadata_problem(nb: dict) -> str | None:
    """Cells whose nbgrader metadata a grader could not use (a string, a list as grade id)."""
    for i, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict):
            return f"cell {i + 1} is not a JSON object"
        meta = cell.get("metadata", {})
        if not isinstance(meta, dict):
            return f"cell {i + 1} has metadata that is not an object"
        nbg = meta.get("nbgrader", {})
        if not isinstance(nbg, dict):
            return f"cell {i + 1} has nbgrader metadata that is not an object"
        if "grade_id" in nbg and not isinstance(nbg["grade_id"], str):
            return f"cell {i + 1} has a grade_id that is not a string"
    return None


def check_notebook(path: Path, released: dict) -> str | None:
    """The reason a submitted notebook cannot be graded, or None when it can."""
    from bnlab.grading import untrusted

    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        return (
            f"{path.name} is a symbolic link or a special file, not the notebook itself: "
            "submit the .ipynb file"
        )
    size = st.st_size
    if size > MAX_BYTES:
        return (
            f"the notebook is {size / 2**20:.0f} MB, over the {MAX_BYTES // 2**20} MB limit: "
            "clear all outputs (Kernel > Restart Kernel and Clear Outputs), save, resubmit"
        )
    try:  # without following links or blocking: the file may have been swapped since lstat
        raw = untrusted.read_bytes(path, MAX_BYTES)
    except (OSError, ValueError) as err:
        return f"the notebook could not be read safely ({err}): submit the .ipynb file itself"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return (
            f"not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}): the file "
            "was damaged or is not a notebook; re-download it from the course page and copy "
            "your answers into it"
        )
    try:
        nb = untrusted.loads(text)
    except untrusted.Untrusted:
        return (
            "the notebook's JSON is nested too deeply to be a notebook: re-download it from "
            "the course page and copy your answers into it"
        )
    except json.JSONDecodeError as err:
        return (
            f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}): the file "
            "was damaged or edited outside Jupyter; re-download the notebook from the course "
            "page and copy your answers into it"
        )
    version = nb.get("nbformat") if isinstance(nb, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version < 4:
        # nbformat 3 keeps cells under "worksheets": it has no top-level list of cells.
        return (
            f"notebook format version {version} (an old Jupyter/IPython notebook), expected 4: "
            f"convert it with `jupyter nbconvert --to notebook --nbformat 4 {path.name}` (or "
            "open it in Jupyter Lab or Notebook 7 and save it), then resubmit"
        )
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return "not a Jupyter notebook (no list of cells): submit the .ipynb file itself"
    if version != 4:
        return (
            f"notebook format version {version!r}, expected 4: open it in "
            "Jupyter (Lab or Notebook 7), save it, and resubmit"
        )
    problem = _metadata_problem(nb)
    if problem:
        return (
            f"{problem} (edited outside Jupyter): re-download the notebook from the course "
            "page and copy your answers into it"
        )
    import nbformat

    try:
        nbformat.validate(nbformat.from_dict(nb))
    except nbformat.ValidationError as err:
        return (
            f"the notebook does not follow the nbformat schema ({err.message[:120]}): "
            "re-download it from the course page and copy your answers into it"
        )
    ids = _grade_ids(nb)
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        return (
            f"graded cell {duplicated[0]!r} appears {ids.count(duplicated[0])} times "
            "(a copied or duplicated cell): delete the copies so that each graded cell "
            "appears once, or re-download the notebook and copy your answers into it"
        )
    missing = [i for i in _grade_ids(released) if i not in ids]
    if missing:
        return (
            f"cells {', '.join(missing[:4])} are missing (deleted or their metadata "
            "removed): re-download the notebook and copy your answers into it"
        )
    return None


def check_submission(folder: Path, assignment: str, released: dict) -> str | None:
    """Check submitted/STUDENT/ASSIGNMENT/: the expected notebook, present and readable. The
    reason names files as they can be stored (bytes that are not UTF-8 written as \\xNN)."""
    from bnlab.grading import untrusted

    reason = _submission_problem(folder, assignment, released)
    return None if reason is None else untrusted.shown_name(reason)


def _submission_problem(folder: Path, assignment: str, released: dict) -> str | None:
    expected = folder / f"{assignment}.ipynb"
    for where in (folder.parent, folder):  # submitted/STUDENT and submitted/STUDENT/ASSIGNMENT
        if os.path.islink(where):
            return (
                f"the folder {where.name} is a symbolic link (to another student's or the "
                "course's files): submit your own notebook"
            )
    if not os.path.lexists(expected):  # a link or special file: check_notebook refuses it
        others = sorted(p.name for p in folder.glob("*.ipynb"))
        if others:
            return (
                f"no {expected.name} in the submission (found {', '.join(others[:3])}): "
                f"rename the notebook back to {expected.name} and resubmit"
            )
        return f"no {expected.name} in the submission: submit the assignment's notebook"
    return check_notebook(expected, released)


def screen(root: Path, assignment: str, released: dict) -> list[Rejection]:
    """Every submission of one assignment that cannot be graded, with its reason."""
    rejected = []
    for folder in sorted((root / "submitted").glob(f"*/{assignment}")):
        if not folder.is_dir():
            continue
        reason = check_submission(folder, assignment, released)
        if reason:
            student = folder.parent.name
            rejected.append(
                Rejection(student, assignment, str(folder / f"{assignment}.ipynb"), reason)
            )
    return rejected


def record(root: Path, assignment: str, rejected: list[Rejection]) -> Path:
    """Write the not-graded list of an assignment (replacing the previous one)."""
    path = root / "not_graded" / f"{assignment}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([r.__dict__ for r in rejected], indent=1))
    tmp.replace(path)
    return path


def load_records(root: Path) -> dict[tuple[str, str], str]:
    """(student, assignment) -> reason, for every submission set aside so far."""
    out = {}
    for path in sorted((root / "not_graded").glob("*.json")):
        for item in json.loads(path.read_text()):
            out[(item["student"], item["assignment"])] = item["reason"]
    return out
