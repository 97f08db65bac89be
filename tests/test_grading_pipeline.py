"""Every assignment end to end through the real nbgrader commands, in a scratch course root.

release (generate_assignment + release_assignment) -> a learner's fetch_assignment and submit
through the exchange -> collect; the rest of the cohort arrives as files (the instructor's
solution, an untouched notebook, every corpus submission) -> autograde -> generate_feedback ->
export. Grades are read back from the gradebook and the CSV, feedback from its HTML.
"""

from __future__ import annotations

import csv
import getpass
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from corpus_tools import cohort, submission

from bnlab.checks import framework_stems
from bnlab.core.course import source_notebook, stems
from conftest import run_course

EXCHANGE_STUDENT = getpass.getuser()  # this machine's user submits through the exchange
GENERIC = {"failed", "exception"}
# The NumPy assignments here; the framework ones in test_grading_pipeline_frameworks.py, which
# runs these same tests on its own STEMS, so that pytest-xdist runs the two side by side.
STEMS = sorted(set(stems()) - set(framework_stems()))


def pytest_generate_tests(metafunc):
    """Every test taking `stem` runs once per assignment of its module's STEMS."""
    if "stem" in metafunc.fixturenames:
        metafunc.parametrize("stem", metafunc.module.STEMS)


def learner_nbgrader(*args, cwd: Path, root: Path) -> None:
    exe = Path(sys.executable).parent / "nbgrader"
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        [str(exe), *args, "--course", "batchnorm", f"--Exchange.root={root / 'exchange'}"],
        cwd=cwd,
        check=True,
        capture_output=True,
        env=env,
    )


@pytest.fixture(scope="module")
def course(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("course")
    env = {"BNLAB_COURSE_ROOT": str(root)}
    home = tmp_path_factory.mktemp("learner-home")
    for stem in request.module.STEMS:
        run_course("release", stem, env=env)
        # One learner goes the JupyterHub way: fetch, solve, submit; the instructor collects.
        learner_nbgrader("fetch_assignment", stem, cwd=home, root=root)
        (home / stem / f"{stem}.ipynb").write_text(json.dumps(submission(stem, {})))
        learner_nbgrader("submit", stem, cwd=home, root=root)
        run_course("collect", stem, env=env)
        for student, (answers, _) in cohort(stem).items():
            path = root / "incoming" / stem / f"{student}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(submission(stem, answers)))
            run_course("submit", str(path), "--student", student, "--assignment", stem, env=env)
        run_course("autograde", stem, env=env)
        run_course("feedback", stem, env=env)
    run_course("export", "--to", str(root / "grades.csv"), env=env)
    with open(root / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return root, rows


def scores(course, stem):
    return {
        r["student_id"]: (float(r["score"]), float(r["max_score"]))
        for r in course[1]
        if r["assignment"] == stem
    }


def cell_scores(root, stem, student):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(stem, stem, student)
        return {g.name: (g.score, g.max_score) for g in nb.grades}


def feedback_text(root, stem, student) -> tuple[str, str]:
    html = (root / "feedback" / student / stem / f"{stem}.html").read_text()
    return html, BeautifulSoup(html, "html.parser").get_text()


def test_solution_and_exchange_submission_score_full_marks(course, stem):
    got = scores(course, stem)
    assert got["solution"][0] == got["solution"][1] > 0
    assert got[EXCHANGE_STUDENT][0] == got[EXCHANGE_STUDENT][1]


def test_untouched_notebook_scores_zero(course, stem):
    assert scores(course, stem)["blank"][0] == 0.0


def test_valid_variants_score_full_marks(course, stem):
    got = scores(course, stem)
    valid = [s for s, (_, expect) in cohort(stem).items() if s.startswith("valid_")]
    assert valid
    for student in valid:
        assert got[student][0] == got[student][1], student


def test_mistakes_lose_exactly_their_parts_and_feedback_names_them(course, stem):
    root, _ = course
    wrong = {s: e for s, (_, e) in cohort(stem).items() if s.startswith("wrong_")}
    assert wrong
    for student, expect in wrong.items():
        cells = cell_scores(root, stem, student)
        for grade_id, (score, max_score) in cells.items():
            assert score == (0 if grade_id in expect else max_score), (student, grade_id)
        total = sum(s for s, _ in cells.values())
        assert 0 <= total < sum(m for _, m in cells.values())
        _, text = feedback_text(root, stem, student)
        for diagnosis in set(expect.values()) - GENERIC:
            assert f"Diagnosis: {diagnosis}" in text, (student, diagnosis)


def test_feedback_never_shows_hidden_tests(course, stem):
    root, _ = course
    source = "\n".join(c.source for c in source_notebook(stem).cells)
    hidden = [
        line.strip()
        for block in source.split("### BEGIN HIDDEN TESTS")[1:]
        for line in block.split("### END HIDDEN TESTS")[0].splitlines()
        if line.strip()
    ]
    assert hidden
    for student in ("blank", "solution", *[s for s in cohort(stem) if s.startswith("wrong_")]):
        html, text = feedback_text(root, stem, student)
        for line in hidden:
            assert line not in text, (student, line)
        assert not re.search(r"seed=\s*\d", text.replace("seed=0", "")), student
        assert "BEGIN HIDDEN TESTS" not in html


@pytest.fixture(scope="module")
def sandboxed(course, tmp_path_factory, request):
    """The same submissions graded again by the sandboxed grader (`bn-course grade`), in a
    copy of the course root: student -> ledger row, per assignment."""
    from bnlab.grading import ledger

    root = tmp_path_factory.mktemp("sandboxed") / "course"
    shutil.copytree(course[0], root)
    env = {"BNLAB_COURSE_ROOT": str(root)}
    out = {}
    for stem in request.module.STEMS:
        run_course("grade", stem, "--workers", "2", "--no-feedback", "--no-progress", env=env)
        gb = ledger.open_gradebook(f"sqlite:///{root / 'gradebook.db'}")
        try:
            out[stem] = {r["student"]: json.loads(r["summary"]) for r in ledger.rows(gb, stem)}
        finally:
            gb.close()
    return out


def test_sandboxed_grader_agrees_with_stock_nbgrader(course, sandboxed, stem):
    """Every cell of every submission: the sandboxed grader's score equals stock nbgrader's
    (which ran the same checks inside the learner's kernel), and it names the same mistakes."""
    root, _ = course
    students = [*cohort(stem), EXCHANGE_STUDENT]
    assert set(sandboxed[stem]) == set(students)
    for student in students:
        stock = {k: s for k, (s, _) in cell_scores(root, stem, student).items()}
        mine = {k: c["score"] for k, c in sandboxed[stem][student]["cells"].items()}
        assert mine == stock, student
    for student, (_, expect) in cohort(stem).items():
        for grade_id, diagnosis in (expect or {}).items():
            if diagnosis not in GENERIC:
                assert diagnosis in sandboxed[stem][student]["cells"][grade_id]["diagnoses"]
