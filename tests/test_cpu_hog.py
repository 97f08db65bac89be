"""An honest student graded beside a CPU hog: 240 busy processes in one submission.

The hog is graded in one thread; once its processes exist, honest students are graded in
another, one after the other, while it runs (as two workers would). With the submission's
cgroup CPU quota (0.9 core for all its processes together) the honest students get their full
marks; with the per-process limits only (cgroups off) the hog's 240 sessions take nearly all the
CPU and the honest student runs out of time (in its cells, or already in the runner's setup:
then it is a grader error, retried on the next run, not a grade). Both runs are here, so the
test fails if the quota goes. The same hog also sits in the hostile batch
(tests/adversarial_cases.py).

Both tests run in the suite's serial phase (marker `serial`): the control starves the whole
machine on purpose, which would starve another test running beside it.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import time

import pytest
from adversarial_cases import CPU_HOG, MAX, STEM, Case, build, solution

from bnlab.core import refcache
from bnlab.grading import cohort, grader, sandbox
from conftest import run_course

pytestmark = [
    pytest.mark.skipif(
        shutil.which("bwrap") is None and os.environ.get("CI") != "true",
        reason="bubblewrap is not installed (sudo apt-get install bubblewrap)",
    ),
    pytest.mark.slow,
    pytest.mark.serial,
]

HOG = CPU_HOG  # 240 processes, each in its own session
RUN_SEED = 7
# The hog keeps its 240 processes busy this long: long enough that every honest sandbox lies
# wholly inside its run. (Without the quota the grading process itself, judging outside the
# sandbox, is starved too, so a starved honest student may return after the hog has ended;
# what counts is that its sandbox started with its whole wall limit of the hog's run left.)
HOG_WALL_S = 40.0
HONEST_WALL_S = 12.0  # an honest submission needs about 3 s of one core
# Hog processes that must exist before the honest students are graded: with the quota, and
# without it (where the hog must already hold the machine for the control to mean anything).
HOG_STARTED = {True: 50, False: 100}


def _processes() -> int:
    return sum(1 for d in os.listdir("/proc") if d.isdigit())


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A released course with the hog and two honest submissions, and its references."""
    root = tmp_path_factory.mktemp("hog-course")
    run_course("release", STEM, env={"BNLAB_COURSE_ROOT": str(root)})
    master, released = grader.load_master(root, STEM)
    cases = [Case("hog", {"batchnorm_forward": HOG + solution("batchnorm_forward")})]
    cases += [Case(f"honest{i}") for i in range(2)]
    folders = {}
    for case in cases:
        folders[case.student] = folder = root / "submitted" / case.student / STEM
        folder.mkdir(parents=True)
        for name, data in build(case, released).items():
            (folder / name).write_bytes(data)
    cache = cohort.prime(root, STEM, master, RUN_SEED)
    return master, released, folders, cache


def _grade_beside_hog(course, monkeypatch, cgroups: bool, honest: int, hog_wall_s: float) -> list:
    """Start grading the hog; once its processes exist, grade `honest` honest students one
    after another while it runs; return their results (and the hog's, last)."""
    master, released, folders, cache = course
    monkeypatch.setenv(refcache.ENV, str(cache))

    def grade(student: str, wall_s: float):
        limits = sandbox.Limits(wall_s=wall_s, cpu_s=int(2 * wall_s) + 1, cgroups=cgroups)
        return grader.grade_submission(
            folders[student], student, STEM, master, released, limits, run_seed=RUN_SEED
        )

    before = _processes()
    hog_started = time.monotonic()
    hog = concurrent.futures.ThreadPoolExecutor(1).submit(grade, "hog", hog_wall_s)
    # Under the quota the hog's parent shares its 0.9 core with its own spinning children, so
    # its forks slow as they accumulate (about sqrt(t): +41 at 2 s, +100 at 14 s on a quiet
    # run here, and one CI run had +99 at 20 s): there, 50 busy processes are reached in a few
    # seconds, and the hog keeps forking while the honest students run.
    deadline = time.monotonic() + 20
    started = HOG_STARTED[cgroups]
    while _processes() < before + started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes() >= before + started, "the hog did not start its processes"
    # Every honest sandbox must lie inside the hog's run: each is started with at least its own
    # wall limit (plus a margin) of the hog's left.
    results = []
    for i in range(honest):
        assert not hog.done()
        assert time.monotonic() - hog_started < hog_wall_s - HONEST_WALL_S - 5, "no room left"
        try:
            results.append(grade(f"honest{i}", HONEST_WALL_S))
        except grader.RunnerNotStarted as err:  # starved before its runner's own setup ended
            results.append(err)
    return [*results, hog.result()]


def test_an_honest_student_beside_a_cpu_hog_is_graded_exactly(course, monkeypatch):
    _need_cgroups()
    *honest, hog = _grade_beside_hog(
        course, monkeypatch, cgroups=True, honest=2, hog_wall_s=HOG_WALL_S
    )
    for result in honest:
        assert isinstance(result, grader.SubmissionResult), result
        assert result.score == MAX, (result.student, result.notes)
    assert hog.score == 0.0 and any("time limit" in n for n in hog.notes)


def test_without_the_cpu_quota_the_hog_starves_an_honest_student(course, monkeypatch):
    """The control: the same, with the per-process limits only. The starved honest student
    runs out of its time either in its own cells (a grade below its due) or already in the
    runner's setup, before any of its code ran (a grader error, which the cohort grader
    retries on its next run; with the quota it is neither)."""
    (honest, hog) = _grade_beside_hog(
        course, monkeypatch, cgroups=False, honest=1, hog_wall_s=HOG_WALL_S
    )
    if isinstance(honest, grader.RunnerNotStarted):
        assert "time limit reached" in str(honest), honest
    else:
        assert honest.score < MAX and any("time limit" in n for n in honest.notes), honest.notes


def _need_cgroups():
    if sandbox.cgroup_version() is None:
        if os.environ.get("CI") == "true" and os.geteuid() == 0:
            pytest.fail(f"cgroups unusable on this CI machine: {sandbox.cgroup_status()[1]}")
        pytest.skip(f"no usable cgroups here: {sandbox.cgroup_status()[1]}")
