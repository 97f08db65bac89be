"""Grade one submission so that the learner's code never decides its own grade.

1. **Intake** (bnlab.grading.intake): a notebook that cannot be graded is set aside with a reason.
2. **Restore**: the course's own copy (source/ASSIGNMENT/ASSIGNMENT.ipynb, written at release)
   supplies every locked cell, every test cell and all nbgrader metadata (grade ids, points);
   from the learner's notebook only the answer cells' source and unmarked cells are kept.
3. **Probe in the sandbox** (bnlab.grading.sandbox, bnlab.grading.sandbox_runner): the cells
   run in order in an isolated process; at each test cell the runner hands back arrays only.
4. **Judge here**: the probe plan is read from the trusted test cells, the inputs are
   regenerated from their seeds, the references come from the real framework layers, and a
   test cell earns its points when every check in it passes. Learner code is never imported or
   executed in this process; files from the sandbox are read as npz (no pickles) and JSON.
5. **Record** (bnlab.grading.ledger): an autograded notebook that nbgrader's generate_feedback,
   export and formgrader read, and the grades in nbgrader's gradebook, in one transaction.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bnlab.checks.harness import Verdict
from bnlab.core.versions import grader_version
from bnlab.grading import intake, review, sandbox, untrusted

NUMPY_MODULES = (
    "bnlab.checks.forward",
    "bnlab.checks.backward",
    "bnlab.checks.running",
    "bnlab.checks.beyond",
)
MESSAGE_CHARS = 4000  # one check's message in the autograded notebook and feedback
CELL_OUTPUT_CHARS = 5000  # one code cell's captured output
SUBMISSION_OUTPUT_CHARS = 1_000_000  # all captured output of one submission

RUNNER_MODULE = "bnlab.grading.sandbox_runner"  # what each sandbox runs: python -m RUNNER_MODULE


class RunnerNotStarted(RuntimeError):
    """The sandbox never started the grader's runner: no learner code ran, so there is no
    grade to record (the cohort grader lists it as a grader error and retries it next run)."""


STUDENT_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@+-")


# ----------------------------------------------------------------------------- data
@dataclass
class CellResult:
    grade_id: str
    score: float
    max_score: float
    messages: list[str] = field(default_factory=list)
    diagnoses: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # limits and sandbox events


@dataclass
class SubmissionResult:
    student: str
    assignment: str
    digest: str
    status: str  # "graded" | "not graded"
    reason: str = ""
    cells: list[CellResult] = field(default_factory=list)
    notebook: dict | None = None  # the autograded notebook (nbformat JSON)
    timestamp: str | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    run_seed: int | None = None  # the grading run's input seed (instructor-only, in the ledger)
    review: list[str] = field(default_factory=list)  # bnlab.grading.review (instructor-only)

    @property
    def score(self) -> float | None:
        return sum(c.score for c in self.cells) if self.status == "graded" else None

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.cells)

    def summary(self) -> dict:
        """The report's view of this result (bnlab.grading.report)."""
        return {
            "student": self.student,
            "status": self.status,
            "reason": self.reason,
            "score": self.score,
            "max_score": self.max_score,
            "review": self.review,
            "cells": {
                c.grade_id: {
                    "score": c.score,
                    "max_score": c.max_score,
                    "diagnoses": c.diagnoses,
                    "reasons": c.reasons,
                }
                for c in self.cells
            },
        }

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("notebook")
        return json.dumps(data)


# ----------------------------------------------------------------------------- plan
def plan_test_cell(source: str) -> list[dict]:
    """The checks of a trusted test cell: [{"check", "names", "seed"}].

    Test cells are written as `checks.check("id", name, ..., seed=N)` calls only; anything else
    in a test cell is an authoring error (it could not be judged outside the learner's kernel).
    """
    from bnlab.checks import CHECKS

    items = []
    for stmt in ast.parse(source).body:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if not (
            isinstance(call, ast.Call)
            and ast.unparse(call.func) in ("checks.check", "check")
            and call.args
            and isinstance(call.args[0], ast.Constant)
            and all(isinstance(a, ast.Name) for a in call.args[1:])
        ):
            raise ValueError(f"test cells may only call checks.check(...): {ast.unparse(stmt)!r}")
        check_id = call.args[0].value
        if check_id not in CHECKS:
            raise ValueError(f"unknown check {check_id!r}")
        seed = 0
        for kw in call.keywords:
            if kw.arg != "seed" or not isinstance(kw.value, ast.Constant):
                raise ValueError(f"unsupported argument in {ast.unparse(call)!r}")
            seed = int(kw.value.value)
        items.append({"check": check_id, "names": [a.id for a in call.args[1:]], "seed": seed})
    return items


def run_input_seed(run_seed: int | None, check_id: str, seed: int) -> int:
    """The seed a check's inputs are drawn from in one grading run.

    Everything inside the sandbox can be read by learner code and carried out through its
    output (printed, raised, written into a later cell), so inputs that stay the same from run
    to run could be answered by a lookup table built offline from an earlier run's feedback.
    Each `bn-course grade` run therefore draws a fresh `run_seed` (kept outside the sandbox and
    out of the feedback) and every check's inputs come from this mix of it with the seed
    written in the test cell. With `run_seed=None` the test cell's own seed is used, as in the
    learner's notebook.
    """
    if run_seed is None:
        return seed
    digest = hashlib.sha256(f"{int(run_seed)}:{check_id}:{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


def _nbg(cell) -> dict:
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nbg if isinstance(nbg, dict) else {}


def cell_source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def restore(learner: dict, master: dict) -> list[dict]:
    """The cells to grade: the learner's order and answers, the course's locked cells."""
    trusted = {_nbg(c).get("grade_id"): c for c in master["cells"] if _nbg(c).get("grade_id")}
    cells = []
    for cell in learner["cells"]:
        grade_id = _nbg(cell).get("grade_id")
        if grade_id in trusted:
            mine = trusted[grade_id]
            if _nbg(mine).get("solution") and not _nbg(mine).get("locked"):
                new = copy.deepcopy(mine)
                new["source"] = cell_source(cell)  # the learner's answer, with the course metadata
            else:
                new = copy.deepcopy(mine)  # locked or test cell: the course's own version
        else:
            new = {
                "cell_type": cell.get("cell_type", "code"),
                "metadata": {},  # unknown nbgrader metadata never carries points
                "source": cell_source(cell),
            }
            if new["cell_type"] not in ("code", "markdown", "raw"):
                new["cell_type"] = "raw"
        new["id"] = str(cell.get("id") or grade_id or f"cell-{len(cells)}")[:64]
        if new["cell_type"] != "code" and new["source"] != (trusted.get(grade_id) or {}).get(
            "source"
        ):
            # Learner-written markdown and raw cells are rendered as HTML by the feedback
            # page and the formgrader, which the instructor opens logged in: no live HTML.
            new["source"] = untrusted.safe_markdown(new["source"])
        if new["cell_type"] == "code":
            new["outputs"], new["execution_count"] = [], None
        else:
            new.pop("outputs", None)
            new.pop("execution_count", None)
        cells.append(new)
    return cells


def _is_test(cell: dict) -> bool:
    nbg = _nbg(cell)
    return cell["cell_type"] == "code" and bool(nbg.get("grade")) and not nbg.get("solution")


def build_job(cells: list[dict], run_seed: int | None = None) -> dict:
    """What the sandbox runs: every code cell up to the last test cell, with the probes of
    each test cell. Cells after the last test cell (the notebooks' demonstrations: training
    curves, plots) are not run: every probe has been taken by then, so nothing they do can
    change a grade, and skipping them saves the grading run their time."""
    job_cells, numpy_only = [], True
    from bnlab.checks import CHECKS

    last_test = max((i for i, c in enumerate(cells) if _is_test(c)), default=-1)
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code" or index > last_test:
            continue
        if _is_test(cell):
            items = plan_test_cell(cell_source(cell))
            for k, item in enumerate(items):
                item["key"] = f"{index}-{k}"
                item["seed"] = run_input_seed(run_seed, item["check"], item["seed"])
                numpy_only &= f"bnlab.checks.{CHECKS[item['check']].module_name}" in NUMPY_MODULES
            job_cells.append({"index": index, "kind": "test", "probes": items})
        else:
            job_cells.append({"index": index, "kind": "code", "source": cell_source(cell)})
    return {"cells": job_cells, "numpy_exercise": numpy_only}


# ----------------------------------------------------------------------------- judge
def _read_json(path: Path, limit: int = 1_000_000):
    """A JSON file from /out, or None when it is missing or refused (untrusted.read_json)."""
    try:
        return untrusted.read_json(path, limit)
    except (OSError, ValueError):
        return None


def judge_cell(cell: dict, job_cell: dict, out: Path, stopped: str | None) -> CellResult:
    from bnlab.checks import CHECKS

    nbg = _nbg(cell)
    result = CellResult(nbg["grade_id"], 0.0, float(nbg.get("points", 0) or 0))
    verdicts: list[Verdict] = []
    for item in job_cell["probes"]:
        spec = CHECKS[item["check"]]
        folder = out / "probes" / item["key"]
        if not untrusted.is_regular(folder / "arrays.npz"):
            why = stopped or "the notebook never reached this test (see the cells above)"
            verdicts.append(Verdict(spec.prop, False, f"Not run: {why}."))
            if stopped and stopped not in result.reasons:
                result.reasons.append(stopped)
            continue
        try:
            probe = untrusted.load_probe(folder)
        except Exception:  # noqa: BLE001 - anything from the sandbox may be malformed
            verdicts.append(Verdict(spec.prop, False, "The grader could not read this result."))
            if "unreadable result" not in result.reasons:
                result.reasons.append("unreadable result")
            continue
        cases = spec.module.cases(spec.prop, item["seed"])
        try:
            verdict = spec.module.judge(spec.prop, cases, probe, spec.what)
        except Exception as err:  # noqa: BLE001 - malformed arrays must not stop the batch
            verdict = Verdict(spec.prop, False, f"The answer could not be judged ({err}).")
        verdicts.append(verdict)
    result.messages = [
        (f"ok [{i['check']}]: " if v.passed else f"[{i['check']}] ") + v.message[:MESSAGE_CHARS]
        for i, v in zip(job_cell["probes"], verdicts, strict=True)
    ]
    result.diagnoses = sorted({v.diagnosis for v in verdicts if v.diagnosis and not v.passed})
    if verdicts and all(v.passed for v in verdicts):
        result.score = result.max_score
    return result


def _outputs_for(result: CellResult) -> list[dict]:
    if result.score == result.max_score:
        return [{"output_type": "stream", "name": "stdout", "text": "\n".join(result.messages)}]
    failed = [m for m in result.messages if not m.startswith("ok [")]
    text = "\n".join(failed)
    return [
        {
            "output_type": "error",
            "ename": "AssertionError",
            "evalue": text,
            "traceback": [f"AssertionError: {text}"],
        }
    ]


def fill_outputs(cells: list[dict], job: dict, out: Path, stopped: str | None) -> list:
    """Judge each test cell and give every cell its outputs, from what the sandbox left in
    `out`: one code cell's captured output is cut to CELL_OUTPUT_CHARS and the whole
    submission's to SUBMISSION_OUTPUT_CHARS, whatever /out/cells/*.json claim (learner code can
    write them). Returns the test cells' results."""
    by_index = {jc["index"]: jc for jc in job["cells"]}
    results = []
    budget = SUBMISSION_OUTPUT_CHARS
    for index, cell in enumerate(cells):
        jc = by_index.get(index)
        if jc is None:
            continue
        if jc["kind"] == "test":
            res = judge_cell(cell, jc, out, stopped)
            cell["outputs"] = _outputs_for(res)
            results.append(res)
            continue
        record = _read_json(out / "cells" / f"{index}.json")
        record = record if isinstance(record, dict) else {}
        text = str(record.get("stdout", ""))[:CELL_OUTPUT_CHARS]
        if record.get("error"):
            text += ("\n" if text else "") + str(record["error"])[:500]
        if len(text) > budget:  # the whole submission's output is capped too
            cut = "\n[output cut: the submission's output limit]" if budget > 0 else ""
            text = text[: max(budget, 0)] + cut
            budget = 0
        else:
            budget -= len(text)
        if text:
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": text}]
    return results


# ----------------------------------------------------------------------------- grade
def submission_digest(folder: Path, assignment: str) -> str:
    h = hashlib.sha256(grader_version().encode())
    nb = folder / f"{assignment}.ipynb"
    for path in (nb, folder / "timestamp.txt"):
        h.update(path.name.encode())
        try:  # never follows a link, never blocks on a FIFO
            h.update(untrusted.read_bytes(path, intake.MAX_BYTES))
        except (OSError, ValueError):
            h.update(b"<unreadable>")
    return h.hexdigest()


def not_graded(student, assignment, digest, reason, master) -> SubmissionResult:
    cells = [
        CellResult(_nbg(c)["grade_id"], 0.0, float(_nbg(c).get("points", 0) or 0))
        for c in master["cells"]
        if _nbg(c).get("grade")
    ]
    return SubmissionResult(student, assignment, digest, "not graded", reason, cells)


def grade_submission(
    folder: Path,
    student: str,
    assignment: str,
    master: dict,
    released: dict,
    limits: sandbox.Limits | None = None,
    use_sandbox: bool = True,
    digest: str | None = None,
    run_seed: int | None = None,
    before_judge: Callable[[Path], None] | None = None,
    cancel: threading.Event | None = None,
) -> SubmissionResult:
    """Grade submitted/STUDENT/ASSIGNMENT/ (never raises for anything in the submission).
    `digest`: the submission's digest when the caller has computed it already; `run_seed`: the
    grading run's input seed (`run_input_seed`); `before_judge(out)`: called with the sandbox's
    /out once the sandbox has run and before the judge starts (the cohort grader waits there
    for the run's references). `cancel`, once set, stops its sandbox (`sandbox.Cancelled`: no
    result)."""
    limits = limits or sandbox.Limits()
    digest = digest or submission_digest(folder, assignment)
    start = time.perf_counter()
    if not student or not set(student) <= STUDENT_ID_CHARS:
        return not_graded(
            student,
            assignment,
            digest,
            "the student folder name has characters outside letters, digits and _.@+-: "
            "rename the folder to the student's id",
            master,
        )
    reason = intake.check_submission(folder, assignment, released)
    if reason:
        return not_graded(student, assignment, digest, reason, master)
    learner = untrusted.clean(
        untrusted.loads(
            untrusted.read_bytes(folder / f"{assignment}.ipynb", intake.MAX_BYTES).decode("utf-8")
        )
    )
    cells = restore(learner, master)
    job = build_job(cells, run_seed)
    notes = []
    extra = sorted(
        untrusted.clean(p.name)
        for p in folder.iterdir()
        if p.name not in (f"{assignment}.ipynb", "timestamp.txt") and not p.name.startswith(".")
    )
    if extra:
        notes.append(f"ignored extra files: {', '.join(extra[:5])}")
    timestamp = None
    if os.path.lexists(folder / "timestamp.txt"):
        try:
            raw = untrusted.read_bytes(folder / "timestamp.txt", 4096)
            timestamp = raw.decode("utf-8", "replace").strip()[:64] or None
        except (OSError, ValueError) as err:
            notes.append(f"timestamp.txt ignored: {err}")

    with (
        tempfile.TemporaryDirectory(prefix=sandbox.work_prefix()) as tmp,
        sandbox.output_folder(Path(tmp) / "out", limits) as out,
    ):
        job_dir = Path(tmp) / "job"
        job_dir.mkdir()
        # The job (cells, checks, this run's input seeds) goes through the runner's stdin,
        # read before any learner code runs: no file in the sandbox holds it.
        outcome = sandbox.run(
            job_dir,
            out,
            sandbox.runner_argv(RUNNER_MODULE),
            limits,
            job["numpy_exercise"],
            use_sandbox,
            stdin_data=json.dumps(job).encode("utf-8"),
            start_token=sandbox.START_TOKEN,
            cancel=cancel,
        )
        if not outcome.started:
            # No learner code ran: the grader's environment failed (no interpreter in the
            # sandbox, bubblewrap refused, the host too loaded to start it in time). Raised,
            # so the cohort grader records no grade and grades it again on the next run.
            said = outcome.stderr.strip().splitlines()[-1:] or ["nothing on stderr"]
            raise RunnerNotStarted(
                f"the grader's runner did not start in the sandbox (exit code "
                f"{outcome.returncode}{', time limit reached' if outcome.timed_out else ''}): "
                f"{said[0][:300]}"
            )
        # Reads below open their last component without following links; a link one level up
        # (/out/probes or /out/cells as a link to another submission's folder) is removed here.
        untrusted.unlink_links(out)
        stopped = outcome.limit_reason
        progress = _progress(out)
        if not stopped and not progress["finished"]:
            stopped = f"the notebook's process ended early (exit code {outcome.returncode})"
        if stopped and progress.get("current") is not None:
            stopped += f" while running cell {progress['current'] + 1}"
        if before_judge is not None:
            before_judge(out)
        results = fill_outputs(cells, job, out, stopped)
    notebook = {
        "cells": untrusted.clean(cells),
        "metadata": master.get("metadata", {}),
        "nbformat": 4,
        "nbformat_minor": master.get("nbformat_minor", 5),
    }
    result = SubmissionResult(
        student, assignment, digest, "graded", "", results, notebook, timestamp, notes
    )
    result.run_seed = run_seed
    ran = {jc["index"] for jc in job["cells"]}
    result.review = review.read_submission(cells, ran)
    not_run = sum(1 for i, c in enumerate(cells) if c["cell_type"] == "code" and i not in ran)
    if not_run:
        result.notes.append(
            f"{not_run} code cell(s) after the last test not run at grading time "
            "(they cannot change a grade)"
        )
    if stopped:
        result.notes.append(f"sandbox: {stopped}")
    if outcome.disk_limit_hit:
        result.notes.append(
            f"sandbox: /out reached its limit ({limits.out_bytes // 2**20} MB, "
            f"{limits.out_files} files); writes past it failed"
        )
    if outcome.output_capped:
        result.notes.append(
            f"sandbox: output was cut at the {limits.file_bytes // 2**20} MB limit"
        )
    result.timings = {"sandbox": outcome.wall_s, "total": time.perf_counter() - start}
    return result


def _progress(out: Path) -> dict:
    current, finished = None, False
    try:  # refused when it is a FIFO, a link or too large: then the progress is unknown
        text = untrusted.read_bytes(out / "progress.jsonl", 4_000_000).decode("utf-8", "replace")
    except (OSError, ValueError):
        text = ""
    for line in text.splitlines():
        try:
            event = untrusted.loads(line)  # a too-deep line is refused, not a RecursionError
        except (ValueError, untrusted.Untrusted):
            continue
        if isinstance(event, dict) and event.get("event") == "start":
            current = event.get("cell") if isinstance(event.get("cell"), int) else None
        elif isinstance(event, dict) and event.get("event") == "done":
            current = None
        elif isinstance(event, dict) and event.get("event") == "finished":
            finished = True
    return {"current": current, "finished": finished}


def load_master(root: Path, assignment: str) -> tuple[dict, dict]:
    """The course's own notebook (with hidden tests) and the released one, for an assignment."""
    source = root / "source" / assignment / f"{assignment}.ipynb"
    release = root / "release" / assignment / f"{assignment}.ipynb"
    if not source.is_file() or not release.is_file():
        raise SystemExit(
            f"bn-course: {assignment} has not been released in {root} "
            f"(no {source.relative_to(root)}): run `bn-course release {assignment}` first"
        )
    return (
        json.loads(source.read_text(encoding="utf-8")),
        json.loads(release.read_text(encoding="utf-8")),
    )


def write_autograded(root: Path, result: SubmissionResult, folder: Path) -> Path | None:
    """Put the autograded notebook where nbgrader expects it (atomically)."""
    if result.notebook is None:
        return None
    target = root / "autograded" / result.student / result.assignment
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{result.assignment}.ipynb"
    tmp = path.with_suffix(".ipynb.tmp")
    tmp.write_text(json.dumps(result.notebook, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    stamp = target / "timestamp.txt"
    if result.timestamp:  # the value read without following links, never the learner's file
        stamp.write_text(result.timestamp + "\n", encoding="utf-8")
    elif stamp.exists():
        stamp.unlink()
    return path
