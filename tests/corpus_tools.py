"""Reading the submission corpus and grading it in-process (the same checks nbgrader runs)."""

from __future__ import annotations

import re
from pathlib import Path

from bnlab.course import source_notebook
from bnlab.harness import Failure

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
    assert cells, f"{path}: no `# @cell ID` section"
    assert full != bool(expect), f"{path}: say `# expect: full` or list failing tests"
    return cells, (None if full else expect)


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
    namespace: dict = {"__name__": "__main__"}
    outcomes: dict[str, str | None] = {}
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
            outcomes[meta["grade_id"]] = outcome
    return outcomes
