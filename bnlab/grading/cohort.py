"""Grade a whole cohort with one command: parallel, resumable, on one machine or a cluster.

    bn-course grade 02_forward_pass                      # workers = cores, this machine
    bn-course grade 02_forward_pass --workers 1          # one sandbox at a time
    bn-course grade 02_forward_pass --scheduler tcp://head:8786   # a running Dask cluster
    bn-course grade 02_forward_pass --db postgresql+psycopg://...  # the gradebook elsewhere
    bn-course grade 02_forward_pass --zip downloads.zip  # LMS downloads, via nbgrader zip_collect

Each submission is graded by bnlab.grading.grader (sandboxed probe, trusted judge) by a thread
of this process that holds one of the N turns (`--workers N`), or on a Dask worker of a
running cluster (`--scheduler`); the coordinating process (this one) is the gradebook's only
writer and commits one transaction per submission as results arrive. The references for this
run's fresh inputs are computed by a primer process (`bnlab.grading.primer`, the instructor's
solution judged with the real layers) that starts first and runs beside the first sandboxes; a
judge waits for it after its sandbox has run (it gives up its turn while it waits, as a Dask
task steps out of its worker's thread pool, so the next sandbox starts), then reads the
references from the cache. The ledger remembers what was graded, so a rerun after a crash or
`kill -9` grades only what is missing or changed.

Outputs, under the course root: autograded/ (nbgrader's layout), the gradebook, feedback/
(by `nbgrader generate_feedback`, hidden tests removed), reports/ASSIGNMENT-grades.csv
("not graded: <reason>" rows distinct from zeros) and reports/ASSIGNMENT-report.html.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bnlab.core import refcache
from bnlab.grading import grader, ledger, sandbox, untrusted


@dataclass
class Task:
    folder: str
    student: str
    assignment: str
    master: dict
    released: dict
    limits: sandbox.Limits
    use_sandbox: bool
    digest: str
    reference_cache: str | None = None
    run_seed: int | None = None
    primed_event: str | None = None  # a Dask Event set once the references are computed
    stop_event: str | None = None  # a Dask Event set when the run stops: start or judge nothing


# The fewest students one nbgrader generate_feedback process is started for.
FEEDBACK_PER_PROCESS = 20
# How long a judge waits for the primer at most; past it, it computes what it needs itself.
PRIME_WAIT_S = 900.0


def grade_task(task: Task, before_judge=None, cancel=None) -> grader.SubmissionResult:
    """What a worker runs: grade one submission (the worker is trusted grader code). On a
    Dask worker, the run's stop Event stops this submission's sandbox as `cancel` does."""
    if task.reference_cache and Path(task.reference_cache).is_dir():
        os.environ[refcache.ENV] = task.reference_cache  # a shared folder, on a cluster
    watched = None
    if task.stop_event:
        from distributed import Event

        stop = Event(task.stop_event)
        if stop.is_set():  # the run stopped before this task started
            raise _Stopped
        if cancel is None:
            cancel = watched = _cancel_on_stop(stop)
    if before_judge is None and task.primed_event:
        before_judge = functools.partial(_wait_primed, task.primed_event, task.stop_event)
    try:
        return grader.grade_submission(
            Path(task.folder),
            task.student,
            task.assignment,
            task.master,
            task.released,
            task.limits,
            task.use_sandbox,
            task.digest,
            task.run_seed,
            before_judge,
            cancel,
        )
    finally:
        if watched is not None:
            _stop_watching(task.stop_event, watched)


# How long one wait of a stop watcher lasts (one call to the scheduler each); a stop is seen
# at once, this only bounds how long a watcher outlives the last task it watches for.
STOP_POLL_S = 1.0
# One watcher thread per run (stop Event) in a worker process, however many of its tasks run
# there: {stop Event name: the cancel Events of its running tasks}.
_watched: dict[str, set[threading.Event]] = {}
_watched_lock = threading.Lock()


def _cancel_on_stop(stop) -> threading.Event:
    """A cancel Event set when the Dask Event `stop` is set, watched by the run's one watcher
    in this process (started here for the run's first task)."""
    cancel = threading.Event()
    with _watched_lock:
        waiting = _watched.get(stop.name)
        if waiting is None:
            waiting = _watched[stop.name] = set()
            threading.Thread(
                target=_watch_stop, args=(stop,), name=f"bnlab-stop-{stop.name}", daemon=True
            ).start()
        waiting.add(cancel)
    return cancel


def _stop_watching(name: str, cancel: threading.Event) -> None:
    with _watched_lock:
        if name in _watched:
            _watched[name].discard(cancel)


def _watch_stop(stop) -> None:
    """Set the cancel Events of the run's tasks once `stop` is set; end when no task of the
    run is left in this process (a scheduler that cannot be reached is read as no stop: the
    sandboxes' own limits still hold)."""
    while True:
        with _watched_lock:
            if not _watched.get(stop.name):
                _watched.pop(stop.name, None)
                return
        try:
            fired = stop.wait(STOP_POLL_S)
        except Exception:  # noqa: BLE001 - the scheduler gone: stop watching
            with _watched_lock:
                _watched.pop(stop.name, None)
            return
        if fired:
            with _watched_lock:
                for cancel in _watched.pop(stop.name, set()):
                    cancel.set()
            return


# What the submissions waiting outside their worker's thread pool may hold in their /out
# (a tmpfs each, in memory) in one process together; past it, a submission waits on its thread
# and the worker starts no other sandbox until the references are there.
PARK_BYTES = 256 * 2**20
_parked = 0
_parked_lock = threading.Lock()


@contextlib.contextmanager
def _parking(out: Path):
    """Yield whether the submission whose /out is `out` may wait for the references outside
    its slot: True when its /out fits within PARK_BYTES beside those parked already (it then
    counts as parked until the block ends)."""
    global _parked
    size = sandbox.usage_bytes(out)
    with _parked_lock:
        park = _parked + size <= PARK_BYTES
        if park:
            _parked += size
    try:
        yield park
    finally:
        if park:
            with _parked_lock:
                _parked -= size


def _wait_primed(name: str, stop: str | None, out: Path) -> None:
    """In a Dask task: wait for the run's references outside the worker's thread pool (the
    worker starts the next submission's sandbox meanwhile), then take a thread back; on the
    worker's thread instead when the /out held meanwhile would pass PARK_BYTES. A run that
    stopped meanwhile (its `stop` Event set, and the references' Event with it, to wake the
    waiting) is not judged: `_Stopped`."""
    from distributed import Event, rejoin, secede

    event = Event(name)
    if not event.is_set():
        with _parking(out) as park:
            if not park:
                event.wait(PRIME_WAIT_S)
            else:
                secede()
                try:
                    event.wait(PRIME_WAIT_S)
                finally:
                    rejoin()
    if stop and Event(stop).is_set():
        raise _Stopped


PRIMER = [sys.executable, "-m", "bnlab.grading.primer"]  # + ROOT ASSIGNMENT SEED


class Priming:
    """The primer process of one grading run (`bnlab.grading.primer`); `wait()` returns once
    it has ended, for whatever reason: a judge without the references computes them itself."""

    def __init__(self, root: Path, assignment: str, run_seed: int):
        os.environ[refcache.ENV] = str(reference_cache(root))  # the judges read it
        self.proc = None
        if not _primed_marker(root, assignment, run_seed).exists():
            self.proc = subprocess.Popen(
                [*PRIMER, str(root), assignment, str(run_seed)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                # Not in the terminal's process group: Ctrl-C reaches the coordinating process
                # only, which stops the primer itself (`stop`), without a second traceback.
                start_new_session=True,
            )
        self._ended = self.proc is None
        self._stopped = False  # stopped by the run: no warning then
        self._lock = threading.Lock()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self) -> None:
        """Return once the primer has ended; the first caller says so if it failed (callers
        from several threads each wait here)."""
        with self._lock:
            if self._ended:
                return
            try:
                code = self.proc.wait(PRIME_WAIT_S)
            except subprocess.TimeoutExpired:  # a hung primer must not hang the run
                self.proc.kill()
                self.proc.wait()
                code = f"none: stopped after {PRIME_WAIT_S:.0f} s"
            self._ended = True
        if code != 0 and not self._stopped:
            print(
                f"bn-course: warning: computing the references failed (exit code "
                f"{code}); each judge computes what it needs instead",
                file=sys.stderr,
            )

    def stop(self) -> None:
        self._stopped = True
        if self.running():
            self.proc.kill()
            self.proc.wait()


@dataclass
class Summary:
    assignment: str
    graded: int = 0
    not_graded: int = 0
    skipped: int = 0  # already graded, unchanged
    failed: list[str] = field(default_factory=list)  # grader errors: retried on the next run
    wall_s: float = 0.0
    run_seed: int | None = None
    csv: Path | None = None
    report: Path | None = None


def submissions(root: Path, assignment: str) -> list[tuple[str, Path]]:
    """(student, folder) for every submission of `assignment`. A student folder whose name is
    not text (bytes that are not UTF-8) is listed under that name with those bytes written as
    \\xNN, which no valid id contains: it gets a "not graded" row that a gradebook can store."""
    found = []
    for folder in sorted((root / "submitted").glob(f"*/{assignment}")):
        if folder.is_dir():
            found.append((untrusted.shown_name(folder.parent.name), folder))
    return found


def default_db(root: Path) -> str:
    return f"sqlite:///{root / 'gradebook.db'}"


def grade_cohort(
    assignment: str,
    root: Path,
    workers: int | None = None,
    scheduler: str | None = None,
    db_url: str | None = None,
    use_sandbox: bool = True,
    limits: sandbox.Limits | None = None,
    progress: bool = True,
    feedback: bool = True,
    run_seed: int | None = None,
) -> Summary:
    """Grade every submission of `assignment` that is not graded yet (or changed).

    The checks' inputs are drawn afresh for each run (`grader.run_input_seed`) from `run_seed`,
    or from $BNLAB_RUN_SEED, or from the system's random source; the seed is recorded with each
    result so that a run can be reproduced (`bn-course grade --seed N`)."""
    start = time.perf_counter()
    if use_sandbox and sandbox.bwrap_path() is None:
        raise sandbox.SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so learner code cannot be isolated: install "
            "it (sudo apt-get install bubblewrap), or pass --unsafe-no-sandbox to grade with "
            "learner code running under your own account"
        )
    limits = limits or sandbox.Limits()
    master, released = grader.load_master(root, assignment)
    if run_seed is None:
        run_seed = (
            int(os.environ["BNLAB_RUN_SEED"])
            if os.environ.get("BNLAB_RUN_SEED")
            else secrets.randbelow(2**31)
        )
    priming = Priming(root, assignment, run_seed)  # runs beside what follows
    cache = reference_cache(root)
    db_url = db_url or default_db(root)
    try:
        if use_sandbox and scheduler is None:  # a cluster's workers start their own
            sandbox.check_interpreter(limits, grader.RUNNER_MODULE)
        gb = ledger.open_gradebook(db_url)
    except BaseException:
        priming.stop()
        raise
    summary = Summary(assignment, run_seed=run_seed)
    try:
        ledger.check_assignment(gb, assignment)
        done = ledger.digests(gb, assignment)
        todo = []
        for student, folder in submissions(root, assignment):
            digest = grader.submission_digest(folder, assignment)
            if done.get(student) == digest:
                summary.skipped += 1
            else:
                todo.append(
                    Task(
                        str(folder),
                        student,
                        assignment,
                        master,
                        released,
                        limits,
                        use_sandbox,
                        digest,
                        str(cache),
                        run_seed,
                    )
                )
        folders = {t.student: Path(t.folder) for t in todo}
        graded_now: set[str] = set()
        for item in _run(todo, workers, scheduler, progress, priming):
            if isinstance(item, str):
                summary.failed.append(item)
                continue
            try:
                grader.write_autograded(root, item, folders[item.student])
                ledger.record(gb, item)
            except Exception as err:  # noqa: BLE001 - one submission must not stop the cohort
                summary.failed.append(f"{item.student}: {type(err).__name__}: {err}")
                continue
            if item.status == "graded":
                summary.graded += 1
                graded_now.add(item.student)
            else:
                summary.not_graded += 1
        rows = ledger.rows(gb, assignment)
    finally:
        priming.stop()  # only when grading stopped early: it has ended otherwise
        gb.close()
    summary.csv = write_csv(root, assignment, rows)
    summary.report = write_report(root, assignment, rows, master)
    if feedback:
        wanted = graded_now | feedback_missing(root, assignment, rows)
        if wanted:
            generate_feedback(root, assignment, db_url, wanted, workers or os.cpu_count() or 1)
    summary.wall_s = time.perf_counter() - start
    return summary


def _run(todo: list[Task], workers, scheduler, progress: bool, priming: Priming):
    """Yield results (or 'student: error' strings) as they complete."""
    bar = _bar(len(todo), progress)
    try:
        if not todo:
            return
        if scheduler is None:
            for item in _local(todo, workers or os.cpu_count() or 1, priming):
                yield item
                bar.update(1)
            return
        from distributed import Client, Event, as_completed

        client = Client(scheduler)
        run = secrets.token_hex(8)
        stop = event = None
        try:
            stop = Event(f"bnlab-stopped-{run}", client=client)
            if priming.running():
                event = Event(f"bnlab-primed-{run}", client=client)
            todo = [
                dataclasses.replace(
                    t, primed_event=event.name if event else None, stop_event=stop.name
                )
                for t in todo
            ]
            futures = {client.submit(grade_task, t, pure=False): t for t in todo}
            priming.wait()  # meanwhile the workers run sandboxes
            if event is not None:
                event.set()
            for future in as_completed(futures):
                task = futures[future]
                try:
                    yield future.result()
                except Exception as err:  # noqa: BLE001 - a worker crash is retried next run
                    yield f"{task.student}: {type(err).__name__}: {err}"
                bar.update(1)
        finally:
            try:
                # Stopped early (Ctrl-C, the gradebook failing), or done: running sandboxes
                # are cancelled (`grade_task`), tasks waiting for the references wake and end
                # without a judge instead of holding their /out on the workers for up to
                # PRIME_WAIT_S, and queued ones start nothing (and are released with the
                # client).
                for ev in (stop, event):  # stop first: a waiter woken by event sees it
                    if ev is not None:
                        ev.set()
            except Exception:  # noqa: BLE001, S110 - the scheduler gone: nothing waits on it
                pass
            finally:
                client.close()
    finally:
        bar.close()


# Threads of the local path: at most this many submissions wait for the references at once.
LOCAL_THREADS = 32


def _local(todo: list[Task], workers: int, priming: Priming):
    """`--workers N` on this machine: at most N sandboxes at a time, each submission judged in
    this process by the thread that ran its sandbox, results as they complete.

    Each submission's heavy, untrusted part runs in its own sandboxed process already, so the
    workers are threads with N turns between them: no scheduler to start or to talk to (a local
    Dask cluster of threads cost 1 s of this process's CPU per 40 submissions, on the GIL the
    judges share, bench/RESULTS.md). A submission whose judge needs the run's references while
    the primer still computes them gives up its turn (its /out held, within PARK_BYTES) and the
    next submission's sandbox runs meanwhile, as a Dask worker does (`_wait_primed`); it takes
    a turn again to be judged."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    turns = threading.BoundedSemaphore(workers)
    stopping = threading.Event()  # the run stopped early: start nothing more

    def before_judge(out: Path) -> None:
        if priming.running():
            with _parking(out) as park:
                if park:  # give up the turn meanwhile: the next sandbox runs
                    turns.release()
                    try:
                        priming.wait()
                    finally:
                        turns.acquire()
        priming.wait()  # at once when it has ended; says so if it failed
        if stopping.is_set():
            raise _Stopped

    def one(task: Task):
        with turns:
            if stopping.is_set():
                raise _Stopped
            return grade_task(task, before_judge, stopping)

    threads = min(len(todo), max(LOCAL_THREADS, workers))
    pool = ThreadPoolExecutor(threads, thread_name_prefix="grade")
    try:
        futures = {pool.submit(one, t): t for t in todo}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as err:  # noqa: BLE001 - a grader bug must not stop the cohort
                yield f"{futures[future].student}: {type(err).__name__}: {err}"
    finally:
        # Stopped early (or done): no queued submission starts a sandbox, a parked one is not
        # judged, a running sandbox is killed (`sandbox.Cancelled`, no result), and the primer
        # is stopped so that no one waits for it.
        stopping.set()
        priming.stop()
        pool.shutdown(wait=True, cancel_futures=True)


class _Stopped(Exception):
    """A submission not graded because the run stopped early."""


def reference_cache(root: Path) -> Path:
    return root / ".cache" / "references"


def _primed_marker(root: Path, assignment: str, run_seed: int | None) -> Path:
    return reference_cache(root) / f"primed-{assignment}-{grader.grader_version()}-{run_seed}"


def prime(root: Path, assignment: str, master: dict, run_seed: int | None = None) -> Path:
    """Fill the reference cache of an assignment by judging the instructor's own solution (in
    this process: it is trusted code) on the run's inputs, once per grader version and run
    seed; return the cache folder."""
    cache = reference_cache(root)
    os.environ[refcache.ENV] = str(cache)
    marker = _primed_marker(root, assignment, run_seed)
    if marker.exists():
        return cache
    from bnlab.checks import CHECKS

    namespace: dict = {"__name__": "__main__"}
    failing: list[str] = []
    cells = [c for c in master["cells"] if c.get("cell_type") == "code"]
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        for cell in cells:
            nbg = cell.get("metadata", {}).get("nbgrader", {})
            if nbg.get("solution") or (nbg.get("locked") and not nbg.get("grade")):
                code = compile(grader.cell_source(cell), f"<{assignment} solution>", "exec")
                exec(code, namespace)
        for cell in cells:
            nbg = cell.get("metadata", {}).get("nbgrader", {})
            if nbg.get("grade") and not nbg.get("solution"):
                for item in grader.plan_test_cell(grader.cell_source(cell)):
                    spec = CHECKS[item["check"]]
                    learner = [namespace[n] for n in item["names"]]
                    seed = grader.run_input_seed(run_seed, item["check"], item["seed"])
                    cases = spec.module.cases(spec.prop, seed)
                    probe = spec.module.probe(*learner, cases)
                    verdict = spec.module.judge(spec.prop, cases, probe, spec.what)
                    if not verdict.passed:
                        failing.append(f"{item['check']} (seed {item['seed']}, input seed {seed})")
                    _warm_diagnoses(spec, cases, probe)
    if failing:
        print(
            f"bn-course: warning: the instructor's solution of {assignment} fails "
            f"{', '.join(failing)}: check the solution or the tests",
            file=sys.stderr,
        )
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return cache


def _warm_diagnoses(spec, cases, probe) -> None:
    """Judge the solution's probe with each of its float arrays made wrong in turn, so that
    the references and named mistakes a wrong answer's diagnosis compares with are computed
    here (in the primer, beside the sandboxes) rather than by the first judge that meets such
    an answer, in the process that coordinates the run."""
    import numpy as np

    for key, value in probe.arrays.items():
        if not np.issubdtype(value.dtype, np.floating):
            continue
        wrong = dataclasses.replace(probe, arrays={**probe.arrays, key: value * 1.5 + 0.25})
        with contextlib.suppress(Exception):  # a cache warm-up: what fails here is computed
            spec.module.judge(spec.prop, cases, wrong, spec.what)  # on demand, as before


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="submission", disable=not enabled, file=sys.stderr)


# ----------------------------------------------------------------------------- outputs
def write_csv(root: Path, assignment: str, rows: list[dict]) -> Path:
    path = root / "reports" / f"{assignment}-grades.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["student", "assignment", "score", "max_score", "status", "review"])
        for r in rows:
            graded = r["status"] == "graded"
            findings = ledger.review_of(r)
            out.writerow(
                [
                    r["student"],
                    assignment,
                    f"{r['score']:g}" if graded else "",
                    f"{r['max_score']:g}",
                    "graded" if graded else f"not graded: {r['reason']}",
                    "; ".join(findings),
                ]
            )
    tmp.replace(path)
    return path


def write_report(root: Path, assignment: str, rows: list[dict], master: dict) -> Path:
    from bnlab.grading import report

    max_score = sum(
        float(c["metadata"]["nbgrader"].get("points", 0) or 0)
        for c in master["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
    )
    results = []
    for r in rows:
        summary = json.loads(r["summary"])
        for cell in summary.get("cells", {}).values():
            # "exception" says the code raised, not which idea was missed: not a re-teach item
            cell["diagnoses"] = [d for d in cell.get("diagnoses", []) if d != "exception"]
        if summary.get("status") == "not graded":
            summary["reason"] = f"not graded: {summary.get('reason', '')}"
        results.append(summary)
    path = root / "reports" / f"{assignment}-report.html"
    report.write_report(results, path, assignment, max_score)
    return path


def feedback_missing(root: Path, assignment: str, rows: list[dict]) -> set[str]:
    """Students graded (in this run or an earlier one) whose feedback page is missing or older
    than their autograded notebook: a run stopped (Ctrl-C), killed or run with --no-feedback
    between recording the grade and writing the page. Each run writes them."""
    missing = set()
    for row in rows:
        if row["status"] != "graded":
            continue
        student = row["student"]
        notebook = root / "autograded" / student / assignment / f"{assignment}.ipynb"
        page = root / "feedback" / student / assignment / f"{assignment}.html"
        try:
            if not page.exists() or page.stat().st_mtime_ns < notebook.stat().st_mtime_ns:
                missing.add(student)
        except OSError:  # no autograded notebook: nothing to make a page from
            continue
    return missing


def generate_feedback(
    root: Path,
    assignment: str,
    db_url: str,
    students: set[str] | None = None,
    processes: int = 1,
) -> None:
    """nbgrader's generate_feedback for `assignment`: for the `students` graded in this run
    only (the others' pages are up to date), or for everyone when `students` is None; split
    over up to `processes` nbgrader processes at once (each writes its own students' pages and
    only reads the gradebook), at least FEEDBACK_PER_PROCESS students each, since each one
    pays nbgrader's start-up (about 2.7 s here, against 0.07 s per student)."""
    from concurrent.futures import ThreadPoolExecutor

    from bnlab.core.course import nbgrader
    from bnlab.grading import report

    everyone = {p.parent.name for p in (root / "autograded").glob(f"*/{assignment}")}
    wanted = sorted(everyone if students is None else set(students) & everyone)
    if not wanted:
        return
    n = max(1, min(processes, len(wanted) // FEEDBACK_PER_PROCESS))
    chunks = [wanted[i::n] for i in range(n)]

    def one(chunk: list[str]) -> None:
        extra = []
        others = sorted(everyone - set(chunk))
        if others:
            extra.append(f"--CourseDirectory.student_id_exclude={','.join(others)}")
        nbgrader(
            "generate_feedback",
            assignment,
            "--force",
            f"--CourseDirectory.db_url={db_url}",
            *extra,
            root=root,
        )

    with ThreadPoolExecutor(n) as pool:
        for done in [pool.submit(one, chunk) for chunk in chunks]:
            done.result()
    report.secure_feedback_pages(root, assignment)
