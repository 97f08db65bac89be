"""Grading a cohort: one worker vs two, a running Dask cluster, kill -9 and resume, PostgreSQL,
LMS zip downloads, and the instructor's report. All through `bn-course grade`.

The cohort is the 02_forward_pass corpus (valid variants and named mistakes) plus the solution
and an untouched notebook; the grades of a one-worker run are the reference for the others.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from corpus_tools import cohort, submission
from pgserver import pg_url  # noqa: F401 - a fixture

from bnlab.grading import ledger
from conftest import BN_COURSE, REPO, run_course

STEM = "02_forward_pass"


def make_cohort(root: Path, db: str | None = None) -> list[str]:
    env = {"BNLAB_COURSE_ROOT": str(root)}
    run_course("release", STEM, *(["--db", db] if db else []), env=env)
    students = []
    for student, (answers, _) in cohort(STEM).items():
        folder = root / "submitted" / student / STEM
        folder.mkdir(parents=True)
        (folder / f"{STEM}.ipynb").write_text(json.dumps(submission(STEM, answers)))
        students.append(student)
    return students


def graded(root: Path, db: str | None = None) -> dict[str, tuple]:
    """student -> (status, reason, score, {cell: (score, diagnoses)}), from the ledger."""
    gb = ledger.open_gradebook(db or f"sqlite:///{root / 'gradebook.db'}")
    try:
        rows = ledger.rows(gb, STEM)
    finally:
        gb.close()
    out = {}
    for r in rows:
        cells = json.loads(r["summary"])["cells"]
        out[r["student"]] = (
            r["status"],
            r["reason"],
            r["score"],
            {k: (c["score"], tuple(c["diagnoses"])) for k, c in cells.items()},
        )
    return out


def env_of(root: Path) -> dict:
    return {"BNLAB_COURSE_ROOT": str(root)}


def grade(root: Path, *args: str, db: str | None = None):
    return run_course(
        "grade", STEM, "--no-progress", *(["--db", db] if db else []), *args, env=env_of(root)
    )


def export(root: Path, *args: str) -> dict[str, dict]:
    """`bn-course export` of the course at `root`: {student: row}."""
    to = root / "export.csv"
    run_course("export", "--to", str(to), *args, env=env_of(root))
    with open(to, newline="", encoding="utf-8") as f:
        return {r["student_id"]: r for r in csv.DictReader(f)}


# `bn-course grade`, in a process that says at exit which frameworks it imported.
WATCHED = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('frameworks imported:', "
    "[m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]))\n"
    "atexit.register(lambda: print('IRI grammar built:', 'rfc3987_syntax' in sys.modules))\n"
    "from bnlab.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def grade_watched(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Grade through `bn-course grade` and check that the coordinating process imported no
    framework (and built no grammar it does not need): every judge waited for the run's
    primer, which computed the references and the named mistakes' diagnoses (a judge that
    came first, or met a mistake the primer had not prepared, would have imported torch
    here, on the run's critical path)."""
    proc = subprocess.run(
        [sys.executable, "-c", WATCHED, "grade", STEM, "--no-progress", *args],
        cwd=REPO,
        env={**os.environ, "BNLAB_COURSE_ROOT": str(root)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "frameworks imported: []" in proc.stdout, proc.stdout
    # nor did it build jsonschema's IRI grammar when it imported nbgrader (ledger._gradebook_class)
    assert "IRI grammar built: False" in proc.stdout, proc.stdout
    # and the instructor's terminal carries no library warnings (nbgrader's add_submission gave
    # three SQLAlchemy warnings per submission, ledger.open_gradebook)
    assert not re.search(r"\w+Warning: ", proc.stderr), proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("one-worker")
    students = make_cohort(root)
    grade_watched(root, "--workers", "1")
    return root, students, graded(root)


def test_one_worker_grades_everyone(reference):
    root, students, rows = reference
    assert sorted(rows) == sorted(students)
    assert rows["solution"][2] == 11.0 and rows["blank"][2] == 0.0
    assert rows["wrong_unbiased_variance"][2] < 11.0


def test_two_workers_equal_one(reference, tmp_path):
    root = tmp_path / "course"
    make_cohort(root)
    grade_watched(root, "--workers", "2", "--no-feedback")
    assert graded(root) == reference[2]


def test_a_running_dask_cluster_via_scheduler(reference, tmp_path):
    from distributed import LocalCluster

    root = tmp_path / "course"
    make_cohort(root)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        proc = grade(root, "--scheduler", cluster.scheduler_address, "--no-feedback")
    assert f"graded {len(reference[1])}," in proc.stdout
    assert graded(root) == reference[2]


def _ledger_count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM bnlab_ledger").fetchone()[0]
    except sqlite3.Error:
        return 0


def start_grading(root: Path, tmp_path: Path):
    """`bn-course grade --workers 1` started in the background, in a process group of its own
    (as a terminal's foreground job), with a temporary folder of this test's own, so that no
    other test's grading process (each sweeps the folder it uses) removes what it leaves:
    (process, its environment, that folder)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, **env_of(root), "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [BN_COURSE, "grade", STEM, "--workers", "1", "--no-feedback", "--no-progress"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return proc, env, tmp


def test_kill_9_mid_batch_then_resume(reference, tmp_path):
    root = tmp_path / "course"
    students = make_cohort(root)
    db = root / "gradebook.db"
    proc, env, tmp = start_grading(root, tmp_path)
    deadline = time.monotonic() + 300
    while _ledger_count(db) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # What the kill left: the killed grader's work folders, with the /out tmpfs of the
    # submissions it was running or holding for their judge still mounted.
    from bnlab.grading import cgroups, sandbox

    left = sorted(tmp.glob(f"{sandbox.WORK_PREFIX}{cgroups.owner_tag(proc.pid)}-*"))
    done = _ledger_count(db)
    assert 4 <= done < len(students), "the kill did not land mid-batch"

    # What the killed run left is consistent: a ledger row exactly where grades are complete.
    from nbgrader.api import Gradebook, MissingEntry

    partial = graded(root)
    with Gradebook(f"sqlite:///{db}") as gb:
        for student in students:
            try:
                nb = gb.find_submission_notebook(STEM, STEM, student)
                scores = [g.auto_score for g in nb.grades]
            except MissingEntry:
                scores = []
            if student in partial:
                assert None not in scores and sum(scores) == partial[student][2], student
            else:
                assert all(s is None for s in scores), student

    assert left, "the killed grader left no work folder: the sweep below is not tested"
    rerun = run_course("grade", STEM, "--no-progress", "--workers", "1", "--no-feedback", env=env)
    assert f"unchanged {done}," in rerun.stdout
    assert f"graded {len(students) - done}," in rerun.stdout
    assert graded(root) == reference[2]
    # ... which the next grading run removed, unmounting what was mounted.
    assert not any(os.path.lexists(p) for p in left)
    assert not any(sandbox._mounts_under(p) for p in left)


def test_ctrl_c_stops_the_running_sandbox_at_once_and_loses_nothing(reference, tmp_path):
    """Ctrl-C (SIGINT) while a submission's code sleeps: the run ends within seconds instead of
    waiting out that sandbox's time limit (120 s), records nothing for it, and the next run
    grades what the first left, as a run without the stop would have."""
    from corpus_tools import answer_cells

    root = tmp_path / "course"
    students = make_cohort(root)
    first, source = next(iter(answer_cells(STEM).items()))
    sleeper = root / "submitted" / "zz_sleeper" / STEM
    sleeper.mkdir(parents=True)
    # It says from its /out (a folder of the host, in this test's TMPDIR) that it sleeps.
    code = "import time\nopen('/out/sleeping', 'w').close()\ntime.sleep(300)\n"
    (sleeper / f"{STEM}.ipynb").write_text(json.dumps(submission(STEM, {first: code + source})))
    proc, env, tmp = start_grading(root, tmp_path)
    deadline = time.monotonic() + 300
    while not list(tmp.glob("*/out/sleeping")) and time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before the sleeper slept"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
    sent = time.monotonic()
    proc.wait(150)
    assert time.monotonic() - sent < 10, "the run waited for the sleeping sandbox"
    assert proc.returncode == 130
    said = proc.stderr.read()
    assert "stopped (Ctrl-C)" in said and "Traceback" not in said, said
    assert "computing the references failed" not in said, said  # the primer is not hit
    before = graded(root)
    assert "zz_sleeper" not in before
    rerun = run_course(
        "grade",
        STEM,
        "--no-progress",
        "--workers",
        "1",
        "--no-feedback",
        "--time-limit",
        "10",
        env=env,
    )
    assert f"unchanged {len(before)}," in rerun.stdout, rerun.stdout
    after = graded(root)
    assert {s: after[s] for s in students} == reference[2]
    assert after["zz_sleeper"][:3] == ("graded", "", 0)  # its time limit reached, this time


def test_postgres_gradebook(reference, tmp_path, pg_url, monkeypatch):  # noqa: F811
    monkeypatch.setenv("PATH", f"{Path(os.sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    root = tmp_path / "course"
    make_cohort(root, db=pg_url)
    assert not (root / "gradebook.db").exists()
    grade(root, "--workers", "2", db=pg_url)  # feedback too: nbgrader reads the same server
    assert graded(root, db=pg_url) == reference[2]
    assert (root / "feedback" / "solution" / STEM / f"{STEM}.html").is_file()
    from nbgrader.api import Gradebook
    from sqlalchemy import text

    with Gradebook(pg_url) as gb:
        assert "PostgreSQL" in gb.db.execute(text("select version()")).scalar()
        assert gb.find_submission(STEM, "solution").score == 11.0
    # export and feedback read the same server with --db (the course root has no gradebook.db)
    exported = export(root, "--db", pg_url)
    assert {s: float(r["score"]) for s, r in exported.items()} == {
        s: v[2] for s, v in reference[2].items()
    }
    assert {s for s, r in exported.items() if r["review"]} == {"wrong_calls_torch"}
    page = root / "feedback" / "blank" / STEM / f"{STEM}.html"
    page.unlink()
    run_course("feedback", STEM, "--student", "blank", "--db", pg_url, env=env_of(root))
    assert page.is_file()
    assert not (root / "gradebook.db").exists()


def test_lms_zip_downloads(tmp_path):
    root = tmp_path / "course"
    env = {"BNLAB_COURSE_ROOT": str(root)}
    run_course("release", STEM, env=env)
    archive = tmp_path / "downloads.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"ada_{STEM}.ipynb", json.dumps(submission(STEM, {})))
        z.writestr(f"bob_{STEM}.ipynb", json.dumps(submission(STEM, None)))
    run_course("grade", STEM, "--zip", str(archive), "--workers", "1", "--no-progress", env=env)
    rows = graded(root)
    assert rows["ada"][2] == 11.0 and rows["bob"][2] == 0.0


def test_report_and_feedback(reference):
    root, students, rows = reference
    html = (root / "reports" / f"{STEM}-report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "re-teach" in html and "eps outside the square root" in html
    for student in students:
        assert (root / "feedback" / student / STEM / f"{STEM}.html").is_file(), student
    lines = (root / "reports" / f"{STEM}-grades.csv").read_text().splitlines()
    assert lines[0] == "student,assignment,score,max_score,status,review"
    assert len(lines) == len(students) + 1
    # whole notebooks, the course's locked cells included: only the cheat is listed for review
    path = root / "reports" / f"{STEM}-grades.csv"
    review = {r["student"]: r["review"] for r in csv.DictReader(path.open(encoding="utf-8"))}
    assert {s for s, found in review.items() if found} == {"wrong_calls_torch"}, review
    # `bn-course export` (nbgrader export) carries the same review column beside the scores
    exported = export(root)
    assert {s: r["review"] for s, r in exported.items()} == review
    scores = {s: float(r["score"]) for s, r in exported.items()}
    assert scores == {s: v[2] for s, v in rows.items()}


def test_a_rerun_regenerates_feedback_only_for_whom_it_graded(reference, tmp_path):
    """A run that grades one changed submission rewrites that student's feedback page and no
    other (nbgrader's generate_feedback, restricted to the students graded in the run), and
    writes the page a stopped or killed run never wrote (here deleted)."""
    root = tmp_path / "course"
    shutil.copytree(reference[0], root)
    pages = {p.parent.parent.name: p for p in (root / "feedback").glob(f"*/{STEM}/{STEM}.html")}
    assert "blank" in pages and len(pages) == len(reference[1])
    before = {s: p.stat().st_mtime_ns for s, p in pages.items()}
    notebook = root / "submitted" / "blank" / STEM / f"{STEM}.ipynb"
    notebook.write_text(json.dumps(submission(STEM, {})))  # the blank student submits again
    pages["solution"].unlink()  # graded, but its run stopped before writing the page
    grade(root, "--workers", "1")
    assert pages["solution"].is_file()
    after = {s: p.stat().st_mtime_ns for s, p in pages.items()}
    assert after["blank"] != before["blank"]
    assert {s for s in pages if after[s] != before[s]} == {"blank", "solution"}
    assert "Score: 11.0 / 11.0" in pages["blank"].read_text(encoding="utf-8")


def test_feedback_split_over_processes_equals_one_process(reference, tmp_path, capfd, monkeypatch):
    """generate_feedback over two nbgrader processes at once (each for its own students)
    writes the same pages as one process for everyone."""
    from bnlab.grading import cohort as cohort_mod

    root = tmp_path / "course"
    shutil.copytree(reference[0], root)
    shutil.rmtree(root / "feedback")
    monkeypatch.setattr(cohort_mod, "FEEDBACK_PER_PROCESS", 1)
    capfd.readouterr()
    cohort_mod.generate_feedback(root, STEM, f"sqlite:///{root / 'gradebook.db'}", None, 2)
    assert capfd.readouterr().out.count("generate_feedback") == 2  # two nbgrader processes
    for student in reference[1]:
        page = f"{student}/{STEM}/{STEM}.html"
        assert (root / "feedback" / page).read_text(encoding="utf-8") == (
            reference[0] / "feedback" / page
        ).read_text(encoding="utf-8"), student


class _FakeEvent:
    def __init__(self, name):
        self.name = name

    def is_set(self):
        return False

    def wait(self, timeout):
        _FakeEvent.waits.append(timeout)
        return True


def test_a_waiting_submission_holds_its_out_only_within_a_budget(tmp_path, monkeypatch):
    """While the primer runs, a judged-later submission steps out of its worker's pool (the
    next sandbox starts) only while what the waiting ones hold in /out stays under
    PARK_BYTES; a larger /out waits on its worker's thread, so a cohort of /out bombs cannot
    pile up in memory."""
    import distributed

    from bnlab.grading import cohort as cohort_mod

    calls = []
    monkeypatch.setattr(distributed, "Event", _FakeEvent)
    monkeypatch.setattr(distributed, "secede", lambda: calls.append("secede"))
    monkeypatch.setattr(distributed, "rejoin", lambda: calls.append("rejoin"))
    monkeypatch.setattr(cohort_mod, "PARK_BYTES", 2**20)
    _FakeEvent.waits = []
    small, big = tmp_path / "small", tmp_path / "big"
    for folder, size in ((small, 1000), (big, 4 * 2**20)):
        folder.mkdir()
        (folder / "arrays.npz").write_bytes(os.urandom(size))
    cohort_mod._wait_primed("e", None, small)
    assert calls == ["secede", "rejoin"] and cohort_mod._parked == 0
    cohort_mod._wait_primed("e", None, big)
    assert calls == ["secede", "rejoin"]  # waited on its thread
    assert len(_FakeEvent.waits) == 2


class _EndlessPrimer:
    """A primer that runs until the run stops it (or 20 s pass)."""

    def __init__(self):
        self.ended = threading.Event()

    def running(self) -> bool:
        return not self.ended.is_set()

    def wait(self) -> None:
        self.ended.wait(20)

    def stop(self) -> None:
        self.ended.set()


def test_a_run_stopped_early_starts_and_judges_nothing_more(tmp_path, monkeypatch):
    """`--workers N` stopped early (Ctrl-C, or the gradebook failing under the loop): no queued
    submission starts its sandbox, no parked one is judged, and the primer they wait for is
    stopped. Here the first result arrives while the others run or wait for the primer; the
    consumer then stops. Before, every submission already picked up by a thread (up to 32)
    still ran its sandbox and was judged."""
    from bnlab.grading import cohort as cohort_mod

    started, judged, cancels = [], [], []

    def fake_grade(task, before_judge, cancel):
        started.append(task.student)
        cancels.append(cancel)
        if task.student == "s00":
            return task.student  # not graded: never waits for the references
        time.sleep(0.5)  # its sandbox
        out = tmp_path / task.student
        out.mkdir()
        before_judge(out)
        judged.append(task.student)
        return task.student

    monkeypatch.setattr(cohort_mod, "grade_task", fake_grade)
    todo = [SimpleNamespace(student=f"s{i:02d}") for i in range(20)]
    primer = _EndlessPrimer()
    results = cohort_mod._local(todo, 2, primer)
    assert next(results) == "s00"
    results.close()  # stopped early
    assert primer.ended.is_set()
    assert judged == []
    # and each sandbox still running was handed the signal that stops it (`sandbox.run`)
    assert cancels and all(c is not None and c.is_set() for c in cancels)
    assert len(started) < len(todo) // 2, started


class _PrimerThatFailsTheRun:
    """A primer still running when the run stops (Ctrl-C, the gradebook failing): its wait
    raises once `parked` submissions wait for it, or after 20 s."""

    def __init__(self, marks: Path, parked: int):
        self.marks, self.parked, self.stopped = marks, parked, False

    def running(self) -> bool:
        return not self.stopped

    def wait(self) -> None:
        deadline = time.monotonic() + 20
        while len(list(self.marks.glob("parked-*"))) < self.parked:
            assert time.monotonic() < deadline, "no submission waited for the references"
            time.sleep(0.05)
        raise RuntimeError("the run stopped")

    def stop(self) -> None:
        self.stopped = True


# Installed in each Dask worker process (`Client.run`): a grade_submission whose "sandbox" is
# a short sleep and that marks, in MARKS, each step a submission reaches.
FAKE_GRADING = """
import time
from pathlib import Path
from bnlab.grading import cohort
marks = Path(MARKS)

def fake_grade(folder, student, *args):
    before_judge, cancel = args[-2:]
    assert callable(before_judge) and cancel is not None
    (marks / f"started-{student}").touch()
    try:
        if student == "s00":  # a sandbox that runs until its time limit, or until cancelled
            if cancel.wait(60):
                (marks / f"cancelled-{student}").touch()
            return student
        time.sleep(0.3)  # its sandbox
        out = marks / student
        out.mkdir()
        (marks / f"parked-{student}").touch()
        before_judge(out)
        (marks / f"judged-{student}").touch()
        return student
    finally:
        (marks / f"ended-{student}").touch()

cohort.grader.grade_submission = fake_grade
cohort.PRIME_WAIT_S = 60.0
"""


def test_a_run_stopped_early_on_a_dask_cluster_leaves_nothing_waiting(tmp_path):
    """`--scheduler` stopped while the primer runs: the tasks waiting on the workers for the
    references end at once without a judge (before, each held its /out on its worker for up to
    PRIME_WAIT_S and was then judged anyway), a sandbox still running is cancelled (before, it
    ran to its time limit), and queued ones start nothing. The workers are processes of their
    own, as on a cluster."""
    from distributed import Client, LocalCluster

    from bnlab.grading import cohort as cohort_mod

    marks = tmp_path / "marks"
    marks.mkdir()
    todo = [
        cohort_mod.Task(str(marks), f"s{i:02d}", STEM, {}, {}, None, True, "d") for i in range(12)
    ]

    def seen(step: str) -> set[str]:
        return {p.name.split("-")[1] for p in marks.glob(f"{step}-*")}

    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None
    ) as cluster:
        with Client(cluster.scheduler_address) as client:
            client.run(exec, FAKE_GRADING, {"MARKS": str(marks)})
        primer = _PrimerThatFailsTheRun(marks, parked=4)
        with pytest.raises(RuntimeError, match="the run stopped"):
            list(cohort_mod._run(todo, None, cluster.scheduler_address, False, primer))
        deadline = time.monotonic() + 15
        while seen("started") - seen("ended") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not seen("started") - seen("ended"), "still waiting on the worker"
        assert seen("judged") == set()
        assert seen("cancelled") == {"s00"}
        time.sleep(1)  # what was queued stays unstarted
        assert 4 <= len(seen("started")) < len(todo), seen("started")


class _FakeStop:
    """A Dask Event's `name` and `wait`, counting the waits (calls to the scheduler)."""

    def __init__(self, name):
        self.name, self.event, self.waits = name, threading.Event(), 0

    def wait(self, timeout):
        self.waits += 1
        return self.event.wait(timeout)


def test_one_stop_watcher_per_run_in_a_worker_process(monkeypatch):
    """However many of a run's tasks run in one worker process, one thread asks the scheduler
    whether the run stopped; a stop cancels them all, and a watcher with no task left ends."""
    from bnlab.grading import cohort as cohort_mod

    monkeypatch.setattr(cohort_mod, "STOP_POLL_S", 0.05)
    stop = _FakeStop("run-a")
    cancels = [cohort_mod._cancel_on_stop(stop) for _ in range(20)]
    assert [t.name for t in threading.enumerate()].count("bnlab-stop-run-a") == 1
    time.sleep(0.5)
    assert stop.waits <= 15  # one watcher's waits, not 20 tasks' (about 10 in 0.5 s)
    stop.event.set()
    deadline = time.monotonic() + 5
    while not all(c.is_set() for c in cancels) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(c.is_set() for c in cancels)
    # a run that ends without a stop: its watcher ends with its last task
    quiet = _FakeStop("run-b")
    cancel = cohort_mod._cancel_on_stop(quiet)
    cohort_mod._stop_watching("run-b", cancel)
    deadline = time.monotonic() + 5
    while "run-b" in cohort_mod._watched and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "run-b" not in cohort_mod._watched and not cancel.is_set()


def test_a_failed_primer_costs_no_grade(reference, tmp_path):
    """When the primer process fails, each judge computes the references it needs itself:
    slower, the same grades, and the run says why. (In its own process: the judges import
    the frameworks, and a test process that later forks gloo ranks must not hold them.)"""
    root = tmp_path / "course"
    shutil.copytree(reference[0], root)
    again = ["solution", "blank", "wrong_unbiased_variance"]
    with sqlite3.connect(root / "gradebook.db") as con:
        marks = ",".join("?" * len(again))
        con.execute(f"DELETE FROM bnlab_ledger WHERE student IN ({marks})", again)
    failing_primer = (
        "import sys\n"
        "from bnlab.grading import cohort\n"
        "cohort.PRIMER = [sys.executable, '-c', 'raise SystemExit(3)']\n"
        "from bnlab.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = ["grade", STEM, "--workers", "1", "--no-feedback", "--no-progress", "--seed", "424242"]
    proc = subprocess.run(
        [sys.executable, "-c", failing_primer, *args],
        cwd=REPO,
        env={**os.environ, "BNLAB_COURSE_ROOT": str(root)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"graded {len(again)}, not graded 0," in proc.stdout, proc.stdout
    assert "grader errors 0" in proc.stdout, proc.stdout
    assert "computing the references failed (exit code 3)" in proc.stderr
    rows = graded(root)
    assert {s: rows[s] for s in again} == {s: reference[2][s] for s in again}


def test_a_runner_that_never_started_costs_no_grade(reference, tmp_path):
    """When the sandbox cannot start the grader's runner, no learner code ran, so there is no
    grade to record. A runner the sandbox cannot start at all (here: a Python at a path it
    lacks, then a runner module that does not exist) is refused before the run, in one
    message (`sandbox.check_interpreter` runs the runner on a job with no cells); a runner
    that fails to start for one submission (here: the same missing module, past a check made
    to pass) makes that submission a grader error, retried on the next run, never a zero. The
    runner says it started on a pipe of its own (`sandbox.run`'s `start_token`) once its own
    setup is done, before any learner code. Then the same course
    is graded by a Python reached through a link to its environment (a path the sandbox does
    not have either, until `sandbox.interpreter` resolves it): the grades are the reference's,
    and 02's cells still cannot import torch there (`_site_packages` resolved):
    `wrong_calls_torch`, which wraps torch's batch norm, scores as in the reference only while
    the frameworks are hidden from it."""
    root = tmp_path / "course"
    shutil.copytree(reference[0], root)
    again = ["solution", "blank", "wrong_unbiased_variance", "wrong_calls_torch"]
    with sqlite3.connect(root / "gradebook.db") as con:
        marks = ",".join("?" * len(again))
        con.execute(f"DELETE FROM bnlab_ledger WHERE student IN ({marks})", again)
    args = ["grade", STEM, "--workers", "1", "--no-feedback", "--no-progress", "--seed", "424242"]
    env = {**os.environ, "BNLAB_COURSE_ROOT": str(root)}

    def grade_patched(patch: str) -> subprocess.CompletedProcess:
        code = f"import sys\n{patch}\nfrom bnlab.cli import main\nsys.exit(main(sys.argv[1:]))\n"
        return subprocess.run(
            [sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True
        )

    proc = grade_patched(
        "from bnlab.grading import sandbox\n"
        "sandbox.interpreter = lambda: '/nonexistent/bin/python3'"
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "refusing to grade: the sandbox cannot start the grader's runner" in proc.stderr
    # the sandbox's own words: bubblewrap's (execvp), or setpriv's when the grader is root
    assert re.search(
        r"(execvp|failed to execute) /nonexistent/bin/python3: No such file", proc.stderr
    ), proc.stderr
    assert not set(again) & set(graded(root))

    missing = (
        "from bnlab.grading import grader\ngrader.RUNNER_MODULE = 'bnlab.grading.no_such_runner'"
    )
    proc = grade_patched(missing)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "refusing to grade: the sandbox cannot start the grader's runner" in proc.stderr
    assert "No module named bnlab.grading.no_such_runner" in proc.stderr
    assert not set(again) & set(graded(root))

    proc = grade_patched(
        f"{missing}\nfrom bnlab.grading import sandbox\n"
        "sandbox.check_interpreter = lambda *a: None"
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"graded 0, not graded 0, unchanged {len(reference[1]) - 4}, grader errors 4" in (
        proc.stdout
    ), proc.stdout
    for student in again:
        assert f"{student}: RunnerNotStarted: the grader's runner did not start" in proc.stderr
    assert "No module named bnlab.grading.no_such_runner" in proc.stderr
    assert not set(again) & set(graded(root))

    link = tmp_path / "venv"
    link.symlink_to(Path(sys.prefix).resolve(), target_is_directory=True)
    python = link / "bin" / Path(sys.executable).name
    main = "import sys\nfrom bnlab.cli import main\nsys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [str(python), "-c", main, *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"graded {len(again)}, not graded 0," in proc.stdout, proc.stdout
    rows = graded(root)
    assert {s: rows[s] for s in again} == {s: reference[2][s] for s in again}
