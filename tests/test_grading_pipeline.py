"""One graded slice end to end through the real nbgrader commands.

generate_assignment -> submissions -> autograde -> generate_feedback -> export, in a scratch
course root, with the instructor's solution, an untouched notebook, valid variants and mistakes.
"""

from __future__ import annotations

import csv
import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from conftest import CORPUS, learner_notebook_with, run_course, solution_code

STEM = "02_forward_pass"
ANSWER = "batchnorm_forward"
MAX = 10.0

SUBMISSIONS = {
    "alice": solution_code(STEM, ANSWER),
    "bob": None,  # the learner notebook, untouched
    "carol": (CORPUS / "forward" / "wrong_unbiased_variance.py").read_text(),
    "dave": (CORPUS / "forward" / "wrong_eps_outside_sqrt.py").read_text(),
    "erin": (CORPUS / "forward" / "valid_np_var.py").read_text(),
    "frank": (CORPUS / "forward" / "valid_einsum_float32.py").read_text(),
}


# This machine's own user goes the way a learner on a shared JupyterHub does: fetch from the
# exchange, work, `nbgrader submit`; the instructor collects. The others arrive as files.
EXCHANGE_STUDENT = getpass.getuser()


def learner_nbgrader(*args, cwd: Path, root: Path) -> None:
    exe = str(Path(sys.executable).parent / "nbgrader")
    exchange = f"--Exchange.root={root / 'exchange'}"
    subprocess.run(
        [exe, *args, "--course", "batchnorm", exchange],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": str(Path(exe).parent) + os.pathsep + os.environ["PATH"]},
    )


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    env = {"BNLAB_COURSE_ROOT": str(root)}
    run_course("generate", STEM, "--dest", str(root / "generated"), env=env)
    run_course("release", STEM, env=env)
    home = tmp_path_factory.mktemp("learner-home")
    learner_nbgrader("fetch_assignment", STEM, cwd=home, root=root)
    fetched = home / STEM / f"{STEM}.ipynb"
    nb = json.loads(fetched.read_text())
    next(c for c in nb["cells"] if c.get("id") == ANSWER)["source"] = solution_code(STEM, ANSWER)
    fetched.write_text(json.dumps(nb))
    learner_nbgrader("submit", STEM, cwd=home, root=root)
    run_course("collect", STEM, env=env)
    for student, code in SUBMISSIONS.items():
        path = root / f"{student}.ipynb"
        path.write_text(json.dumps(learner_notebook_with(STEM, ANSWER, code)))
        run_course("submit", str(path), "--student", student, "--assignment", STEM, env=env)
    run_course("autograde", STEM, env=env)
    run_course("feedback", STEM, env=env)
    run_course("export", "--to", str(root / "grades.csv"), env=env)
    with open(root / "grades.csv", newline="") as f:
        scores = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    return root, scores


def cell_scores(root, student):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(STEM, STEM, student)
        return {g.name: g.score for g in nb.grades}


def test_generated_notebook_equals_committed(course):
    root, _ = course
    assert (root / "generated" / f"{STEM}.ipynb").read_text() == (
        CORPUS.parent.parent / "notebooks" / f"{STEM}.ipynb"
    ).read_text()


def test_solution_scores_full_marks(course):
    assert course[1]["alice"] == MAX


def test_submission_through_the_exchange_is_collected_and_graded(course):
    assert course[1][EXCHANGE_STUDENT] == MAX


def test_untouched_notebook_scores_zero(course):
    assert course[1]["bob"] == 0.0


@pytest.mark.parametrize("student", ["erin", "frank"])
def test_valid_variants_score_full_marks(course, student):
    assert course[1][student] == MAX


@pytest.mark.parametrize("student", ["carol", "dave"])
def test_mistakes_score_partial_marks(course, student):
    assert 0.0 < course[1][student] < MAX


def test_partial_credit_follows_the_broken_property(course):
    root, _ = course
    carol = cell_scores(root, "carol")  # unbiased variance: right shape and affine, wrong values
    assert carol["test_shape"] == 1 and carol["test_affine"] == 1
    assert carol["test_normalizes"] == 0 and carol["test_torch"] == 0 and carol["test_keras"] == 0
    dave = cell_scores(root, "dave")  # eps outside the root: only the eps-sensitive parts fail
    assert dave["test_normalizes"] == 2 and dave["test_eps"] == 0


def test_feedback_hides_hidden_tests(course):
    root, _ = course
    html = (root / "feedback" / "carol" / STEM / f"{STEM}.html").read_text()
    text = BeautifulSoup(html, "html.parser").get_text()
    assert "check_forward_normalizes(batchnorm_forward, seed=0)" in text  # visible test shown
    assert "unbiased variance" in text  # the failure's explanation reaches the learner
    for hidden in ("seed=11", "check_forward_eps", "BEGIN HIDDEN TESTS", "(64, 16)"):
        assert hidden not in text and hidden not in html
