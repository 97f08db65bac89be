"""Benchmark: grading one synthetic cohort several ways, side by side in one run.

The cohort: N submissions of one assignment (`--stem`, default 02_forward_pass; N default 40),
cycling through the instructor's solution, the valid variants and the named mistakes of
tests/corpus, an untouched notebook, and, for 02, hostile submissions from
tests/adversarial_cases.py (patched comparators and grader modules, edited locked cells and
metadata, stolen answers, forged result files). Resource bombs are left out: they cost each
grader its time limit, not its speed.

1. floor: the bare execution of the same notebooks with nbclient (fresh kernel, no grading);
2. stock `nbgrader autograde` (serial);
3. `bn-course grade --workers 1` (in process, sandboxed);
4. `bn-course grade --workers 2` (two sandboxes at a time, sandboxed);
5. `bn-course grade --scheduler` against a Dask scheduler and 2 worker processes started as
   separate programs (as separate hosts would run them);
6. 3 and 4 again with the run's references already computed (the same --seed, the cache of 3
   copied): the grading alone, without the primer process that computes them.

Runs of a few seconds vary by a second or more on a shared 2-core machine, so rows 3-6 run
in `--reps` interleaved rounds (default 3) and are reported as the median and the range; the
ratios come with the range of their per-round values.

Then where the time goes (sandbox start, runner, judge, gradebook write; then step by step from
the runner's progress log: interpreter start, framework import, learner cells, probes, judge,
gradebook, beside one bare nbclient execution of the same notebook), and whether the
scores equal stock nbgrader's on the non-hostile submissions. Appends to bench/RESULTS.md.

    .venv/bin/python bench/bench_grading.py [--n 40] [--stem 05_frameworks_torch] [--reps 3]

`--sizes 40,120,240` measures only 2 workers against 1, at each cohort size: the run's fixed
cost (the primer, start-up) spread over more submissions; and, in the same rounds, the
machine's own 2-process ratio: the same fixed CPU work in fresh processes, 1 and 2 at a time;
and the primer's CPU alone, with the 2w/1w it leaves room for (`bound`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_book import REPO, machine

sys.path.insert(0, str(REPO / "tests"))
from adversarial_cases import build, cases  # noqa: E402
from corpus_tools import cohort, submission  # noqa: E402

STEM = "02_forward_pass"
SEED = 20261203  # the grading runs' input seed (each run still computes its references)
HOSTILE = (
    "a01_patch_numpy_comparators",
    "a02_patch_grader_modules",
    "a07_edit_locked_and_test_cells",
    "a08_edit_points_and_metadata",
    "a11_read_solutions",
    "a15_forged_result_files",
)
BN = str(Path(sys.executable).parent / "bn-course")
NBGRADER = str(Path(sys.executable).parent / "nbgrader")


def make_root(root: Path, n: int) -> dict[str, bool]:
    """Release and fill submitted/; student -> hostile?"""
    env = {**os.environ, "BNLAB_COURSE_ROOT": str(root)}
    subprocess.run([BN, "release", STEM], env=env, check=True, capture_output=True)
    released = json.loads((root / "release" / STEM / f"{STEM}.ipynb").read_text())
    honest = [
        (name, json.dumps(submission(STEM, a)).encode()) for name, (a, _) in cohort(STEM).items()
    ]
    hostile = [
        (c.student, build(c, released)[f"{STEM}.ipynb"])
        for c in cases({"root": root, "repo": REPO, "port": 9})
        if c.student in HOSTILE and STEM == "02_forward_pass"  # the cases are written for 02
    ]
    pool = [(name, data, False) for name, data in honest] + [(s, d, True) for s, d in hostile]
    kinds = {}
    for i in range(n):
        name, data, is_hostile = pool[i % len(pool)]
        student = f"s{i:03d}_{name}"[:60]
        folder = root / "submitted" / student / STEM
        folder.mkdir(parents=True)
        (folder / f"{STEM}.ipynb").write_bytes(data)
        kinds[student] = is_hostile
    return kinds


def timed(cmd, root: Path, check: bool = True) -> float:
    """Wall time of a command (stock nbgrader exits 1 when it could not grade a student)."""
    env = {**os.environ, "BNLAB_COURSE_ROOT": str(root)}
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=check, capture_output=True, cwd=REPO / "autograder")
    return time.perf_counter() - start


def floor(root: Path) -> float:
    import nbformat
    from nbclient import NotebookClient

    start = time.perf_counter()
    for path in sorted((root / "submitted").glob(f"*/{STEM}/{STEM}.ipynb")):
        nb = nbformat.read(path, as_version=4)
        NotebookClient(
            nb,
            timeout=120,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    return time.perf_counter() - start


def stock_scores(root: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(STEM):
            out[sub.student.id] = sub.score
    return out


def ledger_scores(root: Path) -> dict[str, float | None]:
    from bnlab.grading import ledger

    gb = ledger.open_gradebook(f"sqlite:///{root / 'gradebook.db'}")
    try:
        return {r["student"]: r["score"] for r in ledger.rows(gb, STEM)}
    finally:
        gb.close()


def breakdown(root: Path) -> dict[str, float]:
    """Median cost of the parts of one submission's grading, measured in this process."""
    from bnlab.grading import grader, ledger, sandbox

    master, released = grader.load_master(root, STEM)
    folder = next((root / "submitted").glob(f"*solution/{STEM}"))
    parts: dict[str, list[float]] = {
        "sandbox start (bwrap + python, empty)": [],
        "sandbox run (whole notebook)": [],
        "judge (trusted, frameworks warm)": [],
        "gradebook write (one transaction)": [],
    }
    grader.grade_submission(folder, "warm", STEM, master, released)  # imports, once
    with tempfile.TemporaryDirectory() as tmp:
        job, out = Path(tmp) / "job", Path(tmp) / "out"
        job.mkdir()
        out.mkdir()
        for _ in range(5):
            o = sandbox.run(job, out, [sys.executable, "-c", "pass"], sandbox.Limits(), True)
            parts["sandbox start (bwrap + python, empty)"].append(o.wall_s)
    gb = ledger.open_gradebook(f"sqlite:///{root / 'gradebook.db'}")
    try:
        for i in range(5):
            r = grader.grade_submission(folder, f"bench{i}", STEM, master, released)
            parts["sandbox run (whole notebook)"].append(r.timings["sandbox"])
            parts["judge (trusted, frameworks warm)"].append(
                r.timings["total"] - r.timings["sandbox"]
            )
            start = time.perf_counter()
            ledger.record(gb, r)
            parts["gradebook write (one transaction)"].append(time.perf_counter() - start)
    finally:
        gb.close()
    return {k: statistics.median(v) for k, v in parts.items()}


def phases(root: Path, runs: int = 3) -> tuple[dict[str, float], float]:
    """Where one sandboxed grading of the solution goes, from the runner's progress log
    (CLOCK_MONOTONIC, shared with the sandbox): sandbox and interpreter start, the runner's
    setup, the imports cell (the framework import), the learner's other cells, the test cells
    (probes), exit; then the judge and the gradebook. Median of `runs`, beside the median of
    `runs` bare nbclient executions of the same notebook."""
    import nbformat
    from nbclient import NotebookClient

    from bnlab.grading import grader, ledger, sandbox

    master, released = grader.load_master(root, STEM)
    folder = next((root / "submitted").glob(f"*solution/{STEM}"))
    learner = json.loads((folder / f"{STEM}.ipynb").read_text(encoding="utf-8"))
    cells = grader.restore(learner, master)
    job = grader.build_job(cells, run_seed=0)
    imports = next(
        i for i, c in enumerate(cells) if c["cell_type"] == "code" and c.get("id") == "imports"
    )
    grader.grade_submission(folder, "warm", STEM, master, released)  # the judge's imports
    parts: dict[str, list[float]] = {}
    argv = [sandbox.interpreter(), "-m", "bnlab.grading.sandbox_runner", "-", "/out"]
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            job_dir, out = Path(tmp) / "job", Path(tmp) / "out"
            job_dir.mkdir()
            out.mkdir()
            t0 = time.monotonic()
            sandbox.run(
                job_dir,
                out,
                argv,
                sandbox.Limits(),
                job["numpy_exercise"],
                True,
                stdin_data=json.dumps(job).encode(),
            )
            t_end = time.monotonic()
            events = [json.loads(x) for x in (out / "progress.jsonl").read_text().splitlines()]
            started = next(e["t"] for e in events if e.get("event") == "started")
            finished = next(e["t"] for e in events if e.get("event") == "finished")
            starts = {e["cell"]: e for e in events if e.get("event") == "start"}
            dones = {e["cell"]: e["t"] for e in events if e.get("event") == "done"}
            took = {"imports": 0.0, "code": 0.0, "test": 0.0}
            for index, start in starts.items():
                kind = "imports" if index == imports else start["kind"]
                took[kind] += dones[index] - start["t"]
            first = min(e["t"] for e in starts.values())
            judged = [json.loads(json.dumps(c)) for c in cells]
            j0 = time.perf_counter()
            results = grader.fill_outputs(judged, job, out, None)
            judge = time.perf_counter() - j0
        assert all(r.score == r.max_score for r in results), "the solution lost points"
        for name, value in (
            ("sandbox and interpreter start", started - t0),
            ("runner setup (IPython, bnlab.checks)", first - started),
            ("imports cell (the framework import)", took["imports"]),
            ("the learner's other cells", took["code"]),
            ("test cells (the probes)", took["test"]),
            ("runner exit", t_end - finished),
            ("judge (trusted, warm)", judge),
        ):
            parts.setdefault(name, []).append(value)
    gb = ledger.open_gradebook(f"sqlite:///{root / 'gradebook.db'}")
    try:
        for i in range(runs):
            r = grader.grade_submission(folder, f"phase{i}", STEM, master, released)
            start = time.perf_counter()
            ledger.record(gb, r)
            parts.setdefault("gradebook write (one transaction)", []).append(
                time.perf_counter() - start
            )
    finally:
        gb.close()
    bare = []
    for _ in range(runs):
        nb = nbformat.read(folder / f"{STEM}.ipynb", as_version=4)
        start = time.perf_counter()
        NotebookClient(
            nb,
            timeout=300,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(folder)}},
        ).execute()
        bare.append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in parts.items()}, statistics.median(bare)


def with_scheduler(root: Path, workers: int = 2) -> float:
    """`bn-course grade --scheduler` against a Dask scheduler and `workers` worker processes
    started here as separate programs (as separate hosts would run them)."""
    import socket

    from distributed import Client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
            + ["--dashboard-address", ":0"],
            **quiet,
        )
    ]
    try:
        for _ in range(workers):
            procs.append(
                subprocess.Popen(
                    [dask, "worker", address, "--nthreads", "1", "--nworkers", "1"]
                    + ["--no-dashboard"],
                    **quiet,
                )
            )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        return timed(
            [BN, "grade", STEM, "--scheduler", address, "--no-feedback", "--no-progress"]
            + ["--seed", str(SEED)],
            root,
        )
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(30)


SANDBOXED = ("w1", "w2", "dask", "w1p", "w2p")


def grade_once(root: Path, workers: int) -> float:
    """Wall time of `bn-course grade --workers N` on `root` with the bench's input seed."""
    return grade_busy(root, workers)[0]


def grade_busy(root: Path, workers: int) -> tuple[float, float]:
    """`grade_once`, and the core-seconds the whole machine was busy meanwhile (`busy_cores`):
    the grading's processes, the sandboxes' included, and the kernel's work for them."""
    args = ["--workers", str(workers), "--no-feedback", "--no-progress", "--seed", str(SEED)]
    before = busy_cores()
    wall = timed([BN, "grade", STEM, *args], root)
    return wall, busy_cores() - before


def busy_cores() -> float:
    """Core-seconds this machine has spent busy since boot (/proc/stat: user, nice, system,
    irq, softirq; not idle, iowait or steal). Machine-wide, so it counts what per-process
    accounting misses (the sandboxes' processes are reaped inside their own pid namespace, and
    the kernel's work for them), and whatever else runs: read it on a quiet machine."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def grade_runs(base: Path, n: int, reps: int) -> tuple[dict[str, list[float]], list[dict]]:
    """The sandboxed rows, `reps` rounds of all five in turn (each in fresh roots, so each run
    computes its references): {row: [wall per round]}, and each round's roots."""
    runs: dict[str, list[float]] = {k: [] for k in SANDBOXED}
    rounds = []
    for rep in range(reps):
        roots = {k: base / f"{k}-{rep}" for k in SANDBOXED}
        for root in roots.values():
            make_root(root, n)
        runs["w1"].append(grade_once(roots["w1"], 1))
        runs["w2"].append(grade_once(roots["w2"], 2))
        runs["dask"].append(with_scheduler(roots["dask"]))
        # The same two with this seed's references already computed (copied from the w1 run):
        # how the grading itself scales, without the primer.
        for k, w in (("w1p", 1), ("w2p", 2)):
            shutil.copytree(roots["w1"] / ".cache", roots[k] / ".cache", dirs_exist_ok=True)
            runs[k].append(grade_once(roots[k], w))
        rounds.append(roots)
    return runs, rounds


def spread(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}" if len(values) > 1 else "-"


def ratio_line(runs: dict[str, list[float]], a: str, b: str) -> str:
    """The ratio of the medians of rows a and b, and the range of the per-round ratios."""
    per_round = [x / y for x, y in zip(runs[a], runs[b], strict=True)]
    return with_range(statistics.median(runs[a]) / statistics.median(runs[b]), per_round)


def with_range(ratio: float, per_round: list[float]) -> str:
    """A ratio, and the range of its per-round values when there is more than one round."""
    if len(per_round) == 1:
        return f"{ratio:.2f}x"
    return f"{ratio:.2f}x (per round {min(per_round):.2f}-{max(per_round):.2f}x)"


MACHINE_JOBS = 24
MACHINE_WORK = "s = 0\nfor i in range(3_000_000):\n    s += i * i\n"  # about 0.3 s of CPU


def machine_once(width: int) -> float:
    """Wall seconds for MACHINE_JOBS fresh Python processes of fixed CPU work, `width` at a
    time: what this machine gives two independent processes at once, with no grading in it
    (no shared state, no I/O), measured in the same rounds as the grading runs."""
    from concurrent.futures import ThreadPoolExecutor

    def job(_):
        subprocess.run([sys.executable, "-c", MACHINE_WORK], check=True)

    start = time.perf_counter()
    with ThreadPoolExecutor(width) as pool:
        list(pool.map(job, range(MACHINE_JOBS)))
    return time.perf_counter() - start


def primer_cpu(root: Path) -> float:
    """CPU seconds (user + system) of the run's primer process alone, on a fresh reference
    cache: `cohort.PRIMER` as `bn-course grade` starts it, with the bench's
    input seed. It is the run's fixed cost that 1 worker overlaps on the second core and 2
    workers share their cores with."""
    import resource

    make_root(root, 1)
    env = {**os.environ, "BNLAB_COURSE_ROOT": str(root)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    from bnlab.grading.cohort import PRIMER

    subprocess.run(
        [*PRIMER, str(root), STEM, str(SEED)],
        env=env,
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cores_busy(walls: list[float], busy: list[float]) -> str:
    """Median over rounds of busy core-seconds / wall: how many cores a run kept busy."""
    return f"{statistics.median(b / w for w, b in zip(walls, busy, strict=True)):.2f}"


def ceiling(one_worker: list[float], busy_two: list[float]) -> str:
    """C * T1 / B2 per round (median and range), C the machine's cores: 2 workers need at
    least B2 / C seconds of wall, so this bounds 2w/1w from above; measured, not modelled."""
    cores = os.cpu_count() or 1
    per_round = [cores * t / b for t, b in zip(one_worker, busy_two, strict=True)]
    return with_range(statistics.median(per_round), per_round)


def bound(one_worker_s: float, primer_s: float) -> float:
    """2w/1w that 2 perfect cores could give a run whose 1-worker wall is its serial chain
    (the primer overlapped beside it on the other core) and whose 2 workers must also fit the
    primer's CPU: 2 * T1 / (T1 + P). A model's estimate, not a measurement."""
    return 2 * one_worker_s / (one_worker_s + primer_s)


def scaling(sizes: list[int], reps: int) -> None:
    """`--sizes 40,120,240`: 1 and 2 workers only, on cohorts of each size (fresh references
    in every run), in `reps` interleaved rounds: how 2w/1w grows as the run's fixed cost (the
    primer, start-up) is spread over more submissions."""
    base = Path(tempfile.mkdtemp(prefix="bnlab-bench-scaling-"))
    runs: dict[int, dict[str, list[float]]] = {n: {"w1": [], "w2": []} for n in sizes}
    busy: dict[int, dict[str, list[float]]] = {n: {"w1": [], "w2": []} for n in sizes}
    machine_runs: dict[str, list[float]] = {"w1": [], "w2": []}
    primer: list[float] = []
    try:
        for rep in range(reps):
            order = (("w1", 1), ("w2", 2))
            order = order if rep % 2 == 0 else order[::-1]  # alternate who goes first
            for k, w in order:
                machine_runs[k].append(machine_once(w))
            primer.append(primer_cpu(base / f"primer-{rep}"))
            for n in sizes:
                for k, w in order:
                    root = base / f"{k}-{n}-{rep}"
                    make_root(root, n)
                    wall, cores = grade_busy(root, w)
                    runs[n][k].append(wall)
                    busy[n][k].append(cores)
                    shutil.rmtree(root, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    lines = [
        "",
        f"## Grading: 2 workers vs 1 by cohort size — {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}. Submissions of {STEM} (the bench's mix, 1 in 5 hostile), "
        f"`bn-course grade` with fresh references in every run, {reps} interleaved rounds "
        f"(`bench/bench_grading.py --sizes {','.join(map(str, sizes))} --reps {reps}`): median "
        "wall and range.",
        "",
        "| submissions | 1 worker (s) | range | 2 workers (s) | range | 2w/1w "
        "| bound with the primer (model) | cores busy, 1 worker | 2w/1w at most (measured) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    p = statistics.median(primer)
    for n in sizes:
        r = runs[n]
        lines.append(
            f"| {n} | {statistics.median(r['w1']):.1f} | {spread(r['w1'])} "
            f"| {statistics.median(r['w2']):.1f} | {spread(r['w2'])} "
            f"| {ratio_line(r, 'w1', 'w2')} | {bound(statistics.median(r['w1']), p):.2f}x "
            f"| {cores_busy(r['w1'], busy[n]['w1'])} | {ceiling(r['w1'], busy[n]['w2'])} |"
        )
    lines += [
        f"| the machine: {MACHINE_JOBS} processes of fixed CPU work, 1 vs 2 at a time "
        f"| {statistics.median(machine_runs['w1']):.1f} | {spread(machine_runs['w1'])} "
        f"| {statistics.median(machine_runs['w2']):.1f} | {spread(machine_runs['w2'])} "
        f"| {ratio_line(machine_runs, 'w1', 'w2')} | - | - | - |",
        "",
        f"The primer alone (its CPU, user + system, fresh references, once per round): "
        f"{p:.1f} s median ({spread(primer)} s). The model column is 2 * T1 / (T1 + P), with T1 "
        "the median 1-worker wall and P that CPU: what 2 perfect cores could give if 1 worker's "
        "wall is its serial chain, with the primer beside it on the other core (so only while "
        "the chain outlasts the primer), and 2 workers must fit the primer's CPU too (`bound` "
        "in the bench); an estimate, not a measurement.",
        "",
        "Cores busy: the core-seconds the whole machine was busy during the run (/proc/stat) "
        "over its wall, median of the rounds. 2 workers cannot finish in less than their "
        f"busy core-seconds B2 over the machine's {os.cpu_count()} cores, so 2w/1w is at most "
        f"{os.cpu_count()} * T1 / B2, "
        "per round (the last column: median and range). 1 worker keeps more than one core "
        "busy, with what runs beside its one sandbox at a time (the primer, this process "
        "recording results, the kernel's work for the sandboxes), and 2 workers must fit that "
        "work on the same 2 cores.",
        "",
    ]
    with (REPO / "bench" / "RESULTS.md").open("a") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument(
        "--sizes", help="comma-separated cohort sizes: only 2 workers vs 1 at each (scaling)"
    )
    parser.add_argument("--stem", default="02_forward_pass")
    parser.add_argument(
        "--reps",
        type=int,
        default=3,
        help="rounds of the sandboxed rows (median and range reported; floor and stock run once)",
    )
    args = parser.parse_args()
    global STEM
    STEM = args.stem
    if args.sizes:
        scaling([int(x) for x in args.sizes.split(",")], args.reps)
        return
    base = Path(tempfile.mkdtemp(prefix="bnlab-bench-grading-"))
    try:
        roots = {k: base / k for k in ("floor", "stock")}
        kinds = {}
        for root in roots.values():
            kinds = make_root(root, args.n)
        t = {}
        t["floor"] = floor(roots["floor"])
        t["stock"] = timed([NBGRADER, "autograde", STEM, "--force"], roots["stock"], False)
        runs, rounds = grade_runs(base, args.n, args.reps)
        t.update({k: statistics.median(v) for k, v in runs.items()})
        stock = stock_scores(roots["stock"])
        graded = [ledger_scores(r[k]) for r in rounds for k in SANDBOXED]
        w1 = graded[0]  # the first round's 1-worker run
        honest = [s for s, h in kinds.items() if not h]
        same_as_stock = sum(w1[s] == stock.get(s) for s in honest)
        workers_agree = all(scores == w1 for scores in graded)
        hostile_stock_gain = sum((stock.get(s) or 0) > (w1[s] or 0) for s, h in kinds.items() if h)
        stock_missing = sorted(s for s in kinds if s not in stock)
        parts = breakdown(rounds[0]["w1"])
        steps, bare = phases(rounds[0]["w1"])
    finally:
        shutil.rmtree(base, ignore_errors=True)
    n = args.n
    lines = [
        "",
        f"## Grading a cohort — {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}. {n} submissions of {STEM} ({sum(kinds.values())} hostile), "
        f"side by side in one run (`bench/bench_grading.py --reps {args.reps}`): the floor and "
        f"stock once, the sandboxed rows in {args.reps} interleaved rounds (median, and the "
        "range over the rounds).",
        "",
        "| grader | wall (s) | range (s) | per submission (s) | vs floor | vs stock |",
        "|---|---|---|---|---|---|",
    ]
    labels = {
        "floor": "floor: nbclient execution, no grading",
        "stock": "stock `nbgrader autograde` (serial)",
        "w1": "`bn-course grade --workers 1` (sandboxed)",
        "w2": "`bn-course grade --workers 2` (sandboxed)",
        "dask": "`bn-course grade --scheduler` (2 Dask worker processes, sandboxed)",
        "w1p": "`--workers 1`, this seed's references already computed",
        "w2p": "`--workers 2`, this seed's references already computed",
    }
    for k, label in labels.items():
        lines.append(
            f"| {label} | {t[k]:.1f} | {spread(runs.get(k, []))} | {t[k] / n:.2f} "
            f"| {t[k] / t['floor']:.2f}x | {t['stock'] / t[k]:.1f}x faster |"
        )
    lines += [
        "",
        f"- 2 workers vs 1: {ratio_line(runs, 'w1', 'w2')}; 2 Dask worker processes through "
        f"`--scheduler` vs 1 worker: {ratio_line(runs, 'w1', 'dask')}; with the references "
        f"already computed (no primer): {ratio_line(runs, 'w1p', 'w2p')}.",
        f"- Scores equal to stock nbgrader on {same_as_stock} of {len(honest)} non-hostile "
        f"submissions; stock nbgrader gave a hostile submission more than this grader "
        f"{hostile_stock_gain} time(s) of {n - len(honest)}.",
        f"- Every sandboxed run's grades identical to the first 1-worker run's: {workers_agree}.",
        f"- Stock nbgrader left {len(stock_missing)} submission(s) without a grade "
        f"({', '.join(stock_missing) or 'none'}).",
        "",
        "Where one submission's time goes (median of 5, this process, frameworks imported):",
        "",
        "| part | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.3f} |" for k, v in parts.items()],
        "",
        "The same, step by step from the sandbox runner's progress log (median of 3 gradings of "
        "the solution), beside the median of 3 bare nbclient executions of the same notebook:",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.3f} |" for k, v in steps.items()],
        f"| **sum** | **{sum(steps.values()):.3f}** |",
        f"| one bare nbclient execution (fresh kernel, whole notebook) | {bare:.3f} |",
        f"| **grading / bare execution** | **{sum(steps.values()) / bare:.2f}x** |",
        "",
    ]
    with (REPO / "bench" / "RESULTS.md").open("a") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    assert same_as_stock == len(honest), "scores differ from stock nbgrader"
    assert workers_agree, "sandboxed runs disagree on the grades"


if __name__ == "__main__":
    main()
