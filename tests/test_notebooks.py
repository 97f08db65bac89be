"""Learner notebooks are generated from solutions/ and carry nothing they should not."""

from __future__ import annotations

import json
import shutil

import pytest

from bnlab.core import course
from bnlab.grading import workflow
from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_every_solution_has_a_learner_notebook():
    assert [p.stem for p in NOTEBOOKS] == course.stems()


def test_notebooks_are_in_sync_with_solutions(monkeypatch, tmp_path, capsys):
    assert workflow.check_notebooks() == 0
    # The same check on a hand-edited copy must fail and say which file and what to do.
    edited = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", edited)
    nb = json.loads(NOTEBOOKS[0].read_text())
    nb["cells"][0]["source"] = "edited by hand"
    (edited / NOTEBOOKS[0].name).write_text(json.dumps(nb, indent=1) + "\n")
    monkeypatch.setattr(workflow, "NOTEBOOKS", edited)
    assert workflow.check_notebooks() == 1
    assert f"notebooks/{NOTEBOOKS[0].name} differs" in capsys.readouterr().err


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_learner_notebook_has_no_outputs_solutions_or_hidden_tests(path):
    nb = json.loads(path.read_text())
    answer_lines = {
        line.strip()
        for cell in course.source_notebook(path.stem).cells
        for block in cell.source.split("### BEGIN SOLUTION")[1:]
        for line in block.split("### END SOLUTION")[0].splitlines()
        if len(line.strip()) > 12
    }
    assert answer_lines, "the source should contain a solution"
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        assert not cell.get("outputs") and not cell.get("execution_count")
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS"):
            assert marker not in source
        assert not answer_lines & {line.strip() for line in source.splitlines()}
