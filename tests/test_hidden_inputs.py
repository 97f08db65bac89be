"""Hidden test inputs cannot be learned from one grading run and replayed in the next.

What learner code sees in the sandbox (the arguments handed to its functions; the job itself
reaches the runner on stdin and is in no file, see the last test) can be carried out through
the learner's output into the feedback. The attack: read
the inputs of a run, compute the right outputs offline, resubmit a lookup table with no batch
norm code in it. It is built here for the inputs of one run seed (what the feedback of that run
could have leaked) and graded twice, beside an honest student and a wrong baseline: with the
same seed again (the protection switched off: inputs that never change) it scores full marks;
with a fresh seed, as every `bn-course grade` run draws one, it scores only its honest part.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import sys

import numpy as np
import pytest
from corpus_tools import solution_source, submission

from bnlab.checks import CHECKS
from bnlab.core.course import source_notebook
from bnlab.grading import grader, ledger
from conftest import run_course

STEM = "02_forward_pass"
MAX = 11.0
LEAKED_SEED = 1234

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None and os.environ.get("CI") != "true",
    reason="bubblewrap is not installed (sudo apt-get install bubblewrap)",
)


def _key(x, gamma, beta, eps) -> str:
    h = hashlib.sha256()
    for a in (x, gamma, beta):
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    h.update(repr(float(eps)).encode())
    return h.hexdigest()


def lookup_table_answer(run_seed: int) -> str:
    """An answer cell that knows the right output for every input of the run `run_seed`, and
    returns x unchanged for any other input (the honest identity answer, 1 of 11)."""
    namespace: dict = {"np": np}
    exec(solution_source(STEM, "batchnorm_forward"), namespace)
    exec(solution_source(STEM, "spatial_batchnorm_forward"), namespace)
    real = namespace["batchnorm_forward"]
    table: dict[str, np.ndarray] = {}

    def recorder(x, gamma, beta, eps=1e-5):
        out, cache = real(x, gamma, beta, eps)
        table[_key(x, gamma, beta, eps)] = np.array(out, copy=True)
        return out, cache

    namespace["batchnorm_forward"] = recorder  # the spatial solution calls it too
    job = grader.build_job([dict(c) for c in source_notebook(STEM).cells], run_seed)
    for cell in job["cells"]:
        for item in cell.get("probes", []):
            spec = CHECKS[item["check"]]
            learner = [namespace[n] for n in item["names"]]
            probe = spec.module.probe(*learner, spec.module.cases(spec.prop, item["seed"]))
            assert not probe.errors, probe.errors
    buffer = io.BytesIO()
    np.savez(buffer, **table)
    blob = base64.b64encode(buffer.getvalue()).decode()
    return f"""
import base64, hashlib, io
import numpy as np

_TABLE = dict(np.load(io.BytesIO(base64.b64decode({blob!r}))))


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    h = hashlib.sha256()
    for a in (x, gamma, beta):
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    h.update(repr(float(eps)).encode())
    key = h.hexdigest()
    if key in _TABLE:
        return _TABLE[key].copy(), None
    return x.copy(), None
"""


def _grade(tmp_path, name: str, seed: int, answers: dict) -> dict[str, float]:
    root = tmp_path / name
    env = {"BNLAB_COURSE_ROOT": str(root)}
    run_course("release", STEM, env=env)
    for student, cells in answers.items():
        folder = root / "submitted" / student / STEM
        folder.mkdir(parents=True)
        (folder / f"{STEM}.ipynb").write_text(json.dumps(submission(STEM, cells)))
    args = ("grade", STEM, "--workers", "2", "--no-progress", "--no-feedback")
    run_course(*args, "--seed", str(seed), env=env)
    gb = ledger.open_gradebook(f"sqlite:///{root / 'gradebook.db'}")
    try:
        rows = ledger.rows(gb, STEM)
    finally:
        gb.close()
    for r in rows:
        assert json.loads(r["summary"])["run_seed"] == seed  # recorded for the instructor
    return {r["student"]: r["score"] for r in rows}


def test_a_lookup_table_of_one_run_fails_the_next(tmp_path):
    wrong = solution_source(STEM, "batchnorm_forward").replace("var + eps", "var")
    assert wrong != solution_source(STEM, "batchnorm_forward")
    answers = {
        "honest": {},
        "wrong_no_eps": {"batchnorm_forward": wrong},
        "lookup": {"batchnorm_forward": lookup_table_answer(LEAKED_SEED)},
    }
    replayed = _grade(tmp_path, "same-seed", LEAKED_SEED, answers)
    assert replayed["lookup"] == MAX  # the attack pays when the inputs repeat
    fresh = _grade(tmp_path, "fresh-seed", LEAKED_SEED + 1, answers)
    assert fresh["lookup"] == 1.0  # only the shape test, as the identity answer
    for scores in (replayed, fresh):
        assert scores["honest"] == MAX
        assert scores["wrong_no_eps"] < MAX
    assert replayed["wrong_no_eps"] == fresh["wrong_no_eps"]


def test_run_seeds_change_every_input_and_are_drawn_per_run():
    nb = [dict(c) for c in source_notebook(STEM).cells]
    plain = grader.build_job(nb)
    a, b = grader.build_job(nb, 1), grader.build_job(nb, 2)
    seeds = [
        [p["seed"] for c in job["cells"] for p in c.get("probes", [])] for job in (plain, a, b)
    ]
    assert len(seeds[0]) == len(seeds[1]) > 10
    assert all(x != y != z for x, y, z in zip(*seeds, strict=True))


READ_THE_JOB = """
import os
found = []
for path in ("/job/job.json", "/job"):
    try:
        found.append(open(path).read() if path.endswith(".json") else str(os.listdir(path)))
    except OSError as err:
        found.append(type(err).__name__)
try:
    found.append(os.read(0, 1 << 20).decode("utf-8", "replace"))
except OSError as err:
    found.append(type(err).__name__)
print("\\n".join(found))
"""


@pytest.mark.parametrize("via", ["stdin", "file"])
def test_the_job_is_not_a_file_the_learner_can_read(tmp_path, via):
    """The job (cells, checks and this run's seeds) reaches the runner on stdin, read before any
    learner code runs: a cell that reads /job/job.json and fd 0 finds neither. The control
    hands the same job over as /job/job.json, as the grader once did: the cell prints it."""
    from bnlab.grading import sandbox

    marker = "seed-marker-8d1e"
    job = {
        "cells": [{"index": 0, "kind": "code", "source": READ_THE_JOB}],
        "numpy_exercise": True,
        "marker": marker,
    }
    job_dir, out = tmp_path / "job", tmp_path / "out"
    job_dir.mkdir()
    data = json.dumps(job).encode()
    if via == "file":
        (job_dir / "job.json").write_bytes(data)
    argv = [
        sys.executable,
        "-m",
        "bnlab.grading.sandbox_runner",
        "-" if via == "stdin" else "/job",
        "/out",
    ]
    limits = sandbox.Limits(wall_s=60, cpu_s=60)
    with sandbox.output_folder(out, limits) as out:
        outcome = sandbox.run(
            job_dir, out, argv, limits, True, stdin_data=data if via == "stdin" else None
        )
        assert not outcome.timed_out
        printed = json.loads((out / "cells" / "0.json").read_text())["stdout"]
    if via == "stdin":
        assert marker not in printed and "FileNotFoundError" in printed, printed
    else:
        assert marker in printed  # the control: a job in a file is the learner's to read
