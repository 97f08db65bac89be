"""Bad submissions get a clear reason naming the file and the fix; the others are still graded,
and the export tells "not graded: <reason>" apart from a real 0."""

from __future__ import annotations

import csv
import json
import os

import pytest

from bnlab.grading import intake
from conftest import REPO, run_course, solution_code

STEM = "02_forward_pass"
RELEASED = json.loads((REPO / "notebooks" / f"{STEM}.ipynb").read_text())


def solved() -> dict:
    nb = json.loads(json.dumps(RELEASED))
    for cell in nb["cells"]:
        if cell["id"] in ("batchnorm_forward", "spatial_batchnorm_forward"):
            cell["source"] = solution_code(STEM, cell["id"])
    return nb


def duplicated_cell() -> dict:
    nb = solved()
    test = next(c for c in nb["cells"] if c["id"] == "test_shape")
    nb["cells"].append({**json.loads(json.dumps(test)), "id": "copy-of-test"})
    return nb


def missing_cell() -> dict:
    nb = solved()
    nb["cells"] = [c for c in nb["cells"] if c["id"] != "test_torch"]
    return nb


BAD = {  # name -> (file content as bytes, words the reason must contain)
    "invalid_json": (b'{"cells": [', "not valid JSON (line 1"),
    "not_utf8": (b'{"cells": [], "x": "\xff\xfe"}', "not UTF-8"),
    "nbformat3": (
        json.dumps({"nbformat": 3, "worksheets": [], "cells": []}).encode(),
        "format version 3",
    ),
    "nbformat3_worksheets": (  # a real format-3 file: cells live under worksheets
        json.dumps(
            {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": []}]}
        ).encode(),
        "format version 3 (an old Jupyter/IPython notebook), expected 4: convert it with "
        "`jupyter nbconvert --to notebook --nbformat 4",
    ),
    "not_a_notebook": (b"[1, 2, 3]", "not a Jupyter notebook"),
    "duplicated_cell": (json.dumps(duplicated_cell()).encode(), "'test_shape' appears 2 times"),
    "missing_cell": (json.dumps(missing_cell()).encode(), "test_torch are missing"),
    "schema": (json.dumps({**solved(), "metadata": []}).encode(), "nbformat schema"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_bad_notebook_gets_its_reason_and_fix(tmp_path, name):
    content, words = BAD[name]
    path = tmp_path / f"{STEM}.ipynb"
    path.write_bytes(content)
    reason = intake.check_notebook(path, RELEASED)
    assert reason and words in reason
    assert any(fix in reason for fix in ("re-download", "resubmit", "submit", "delete"))


def test_a_good_notebook_passes(tmp_path):
    path = tmp_path / f"{STEM}.ipynb"
    path.write_text(json.dumps(solved()))
    assert intake.check_notebook(path, RELEASED) is None


def test_renamed_and_huge_notebooks(tmp_path, monkeypatch):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "Copy of 02_forward_pass.ipynb").write_text(json.dumps(solved()))
    reason = intake.check_submission(folder, STEM, RELEASED)
    assert "rename the notebook back to 02_forward_pass.ipynb" in reason
    monkeypatch.setattr(intake, "MAX_BYTES", 1000)
    (folder / f"{STEM}.ipynb").write_text(json.dumps(solved()))
    assert "over the 0 MB limit" in intake.check_submission(folder, STEM, RELEASED)


def test_bad_submissions_never_stop_the_others(tmp_path):
    root = tmp_path / "course"
    env = {"BNLAB_COURSE_ROOT": str(root)}
    run_course("release", STEM, env=env)
    submissions = {"good": json.dumps(solved()).encode(), **{k: v[0] for k, v in BAD.items()}}
    for student, content in submissions.items():
        folder = root / "submitted" / student / STEM
        folder.mkdir(parents=True)
        (folder / f"{STEM}.ipynb").write_bytes(content)
    renamed = root / "submitted" / "renamed" / STEM
    renamed.mkdir(parents=True)
    (renamed / "my_answers.ipynb").write_text(json.dumps(solved()))

    proc = run_course("autograde", STEM, env=env)
    assert "graded 1 submission(s)" in proc.stdout
    assert "not graded: duplicated_cell/02_forward_pass/02_forward_pass.ipynb" in proc.stderr
    run_course("export", "--to", str(root / "grades.csv"), env=env)
    with open(root / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert rows["good"]["status"] == "graded" and float(rows["good"]["score"]) == 11.0
    for student in [*BAD, "renamed"]:
        assert rows[student]["status"].startswith("not graded: "), student
        assert rows[student]["score"] == ""  # not a 0
    assert "rename the notebook back" in rows["renamed"]["status"]


def test_links_and_special_files_are_refused_where_a_plain_check_accepts_them(tmp_path):
    """A symlinked notebook or student folder passes `is_file()` / `is_dir()` (what a plain
    check asks) and would be graded as the student's own work; intake refuses both."""
    course = tmp_path / "course"
    honest = course / "submitted" / "honest" / STEM
    honest.mkdir(parents=True)
    (honest / f"{STEM}.ipynb").write_text(json.dumps(solved()))
    assert intake.check_submission(honest, STEM, RELEASED) is None

    linked_nb = course / "submitted" / "thief" / STEM
    linked_nb.mkdir(parents=True)
    (linked_nb / f"{STEM}.ipynb").symlink_to(honest / f"{STEM}.ipynb")
    assert (linked_nb / f"{STEM}.ipynb").is_file()  # the unprotected check says yes
    assert "symbolic link" in intake.check_submission(linked_nb, STEM, RELEASED)

    (course / "submitted" / "copycat").symlink_to(course / "submitted" / "honest")
    folder = course / "submitted" / "copycat" / STEM
    assert folder.is_dir()
    assert "symbolic link" in intake.check_submission(folder, STEM, RELEASED)

    fifo_dir = course / "submitted" / "fifo" / STEM
    fifo_dir.mkdir(parents=True)
    os.mkfifo(fifo_dir / f"{STEM}.ipynb")
    assert "special file" in intake.check_submission(fifo_dir, STEM, RELEASED)
    rejected = {r.student for r in intake.screen(course, STEM, RELEASED)}
    assert rejected == {"thief", "copycat", "fifo"}


@pytest.mark.parametrize(
    "edit, words",
    [
        ("nested", "nested too deeply"),
        ("nbgrader_string", "nbgrader metadata that is not an object"),
        ("grade_id_list", "grade_id that is not a string"),
    ],
)
def test_malformed_metadata_is_a_reason_not_a_crash(tmp_path, edit, words):
    nb = solved()
    if edit == "nbgrader_string":
        nb["cells"][0]["metadata"]["nbgrader"] = "oops"
    elif edit == "grade_id_list":
        cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id"))
        cell["metadata"]["nbgrader"]["grade_id"] = [cell["metadata"]["nbgrader"]["grade_id"]]
    text = json.dumps(nb)
    if edit == "nested":
        text = text.replace(
            '"metadata": {}', '"metadata": {"d": ' + "[" * 50_000 + "]" * 50_000 + "}", 1
        )
    path = tmp_path / f"{STEM}.ipynb"
    path.write_text(text)
    reason = intake.check_notebook(path, RELEASED)
    assert reason and words in reason
