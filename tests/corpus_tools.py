"""Reading the submission corpus and grading it in-process (the same checks nbgrader runs)."""

from __future__ import annotations

import ast
import json
import re
import traceback
from pathlib import Path

from bnlab.checks.harness import Failure
from bnlab.core.course import NOTEBOOKS, source_notebook

CORPUS = Path(__file__).resolve().parent / "corpus"


def corpus_files(prefix: str = "") -> list[Path]:
    return sorted(p for p in CORPUS.glob(f"*/{prefix}*.py"))


def read_submission(path: Path) -> tuple[dict[str, str], dict[str, str] | None]:
    """(answer cells by id, expected diagnosis by grade id; None means every test passes)."""
    text = path.read_text()
    expect: dict[str, str] = {}
    full = False
    for line in text.splitlines():
        m = re.match(r"# expect: (.*)$", line)
        if m and m.group(1).strip() == "full":
            full = True
        elif m:
            grade_id, diagnosis = (part.strip() for part in m.group(1).split("=", 1))
            expect[grade_id] = diagnosis
    cells = {}
    for block in re.split(r"^# @cell ", text, flags=re.M)[1:]:
        cell_id, _, code = block.partition("\n")
        cells[cell_id.strip()] = code.strip() + "\n"
    for block in re.split(r"^# @edit ", text, flags=re.M)[1:]:
        cell_id, _, edits = block.partition("\n")
        cells[cell_id.strip()] = apply_edits(path, path.parent.name, cell_id.strip(), edits)
    assert cells, f"{path}: no `# @cell ID` or `# @edit ID` section"
    assert full != bool(expect), f"{path}: say `# expect: full` or list failing tests"
    return cells, (None if full else expect)


def solution_source(stem: str, cell_id: str) -> str:
    """An answer cell as the instructor wrote it, solution markers removed."""
    cell = next(c for c in source_notebook(stem).cells if c["id"] == cell_id)
    keep = [
        ln
        for ln in cell.source.splitlines()
        if ln.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
    ]
    return "\n".join(keep) + "\n"


def apply_edits(path: Path, stem: str, cell_id: str, edits: str) -> str:
    """The solution's cell with `# old: "..."` / `# new: "..."` pairs applied (Python string
    literals). Each old text must occur exactly once, so an edit cannot rot silently when the
    solution changes."""
    code = solution_source(stem, cell_id)
    pairs = re.findall(r"^# old: (.*)\n# new: (.*)$", edits, flags=re.M)
    assert pairs, f"{path}: `# @edit {cell_id}` needs `# old:` / `# new:` lines"
    for old, new in pairs:
        old, new = ast.literal_eval(old), ast.literal_eval(new)
        assert code.count(old) == 1, f"{path}: {old!r} occurs {code.count(old)} times"
        code = code.replace(old, new)
    return code


def notebook_with(stem: str, answers: dict[str, str]):
    """The instructor's source notebook with some answer cells replaced."""
    nb = source_notebook(stem)
    ids = {c["id"] for c in nb.cells}
    unknown = set(answers) - ids
    assert not unknown, f"{stem} has no cells {unknown}"
    for cell in nb.cells:
        if cell["id"] in answers:
            cell.source = answers[cell["id"]]
    return nb


def grade_in_process(stem: str, answers: dict[str, str]) -> dict[str, str | None]:
    """Run the notebook's cells (hidden tests included) like nbgrader: grade id -> outcome.

    The outcome is None when the test cell passed, else the diagnosis its check named
    ("failed" when none was named, "exception" for other errors).
    """
    return grade_in_process_explained(stem, answers)[0]


def grade_in_process_explained(
    stem: str, answers: dict[str, str]
) -> tuple[dict[str, str | None], dict[str, str]]:
    """`grade_in_process`, and for each test cell whose outcome is "exception" the error's
    traceback: what a test shows when that outcome was not the one expected."""
    namespace: dict = {"__name__": "__main__"}
    outcomes: dict[str, str | None] = {}
    errors: dict[str, str] = {}
    for cell in notebook_with(stem, answers).cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        try:
            exec(compile(cell.source, f"<{stem}:{cell['id']}>", "exec"), namespace)
            outcome = None
        except Failure as err:
            outcome = err.verdict.diagnosis or "failed"
        except Exception:  # noqa: BLE001 - a broken answer makes the later cells fail
            outcome = "exception"
            if meta.get("grade"):
                errors[meta["grade_id"]] = traceback.format_exc()[-3000:]
        if meta.get("grade"):
            outcomes[meta["grade_id"]] = outcome
    return outcomes, errors


def answer_cells(stem: str) -> dict[str, str]:
    return {
        c["id"]: c.source
        for c in source_notebook(stem).cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }


def submission(stem: str, answers: dict[str, str] | None) -> dict:
    """The learner notebook with answers filled in (None: untouched)."""
    nb = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())
    if answers is not None:
        filled = {**answer_cells(stem), **answers}
        for cell in nb["cells"]:
            if cell.get("id") in filled:
                cell["source"] = filled[cell["id"]]
    return nb


PIPELINE_SKIP = "# pipeline: in-process only"


def cohort(stem: str) -> dict[str, tuple[dict | None, dict | None]]:
    """student -> (answers, expected failing tests), for one assignment: the cohort graded
    through real nbgrader. A corpus file with the line PIPELINE_SKIP is proven in-process only
    (tests/test_corpus.py), where it is as strong a proof and costs far less."""
    students = {"solution": ({}, {}), "blank": (None, None)}
    for path in corpus_files():
        if path.parent.name == stem and PIPELINE_SKIP not in path.read_text():
            answers, expect = read_submission(path)
            students[path.stem] = (answers, expect or {})
    return students
