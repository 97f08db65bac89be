"""A PyTorch answer that wraps the framework's batch norm earns nothing, even when it blinds the
in-process guard.

The guard (`bnlab.checks.harness.FrameworkGuard`) is a profile hook in the learner's own
process: it records calls, and the learner can switch it off. Three ways are known to work
against it alone: patching the probe's save path so the recorded calls are dropped, running the
framework's batch norm in another thread (a profile hook is per thread) and `sys.setprofile(None)`
inside the forward. What decides instead is `sandbox_runner.KernelBlock`: while a graded probe
runs, the frameworks' normalizations raise, for every thread and every reference.

Each blinding is shown twice: with the guard alone it scores full marks (so the blinding is
real and the test can fail), and with the block it scores nothing for the cells it fakes —
in-process, and through `bn-course grade` in the sandbox beside an honest student and a wrong
baseline.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from corpus_tools import solution_source, submission

from bnlab.checks import CHECKS
from bnlab.checks.harness import Probe
from bnlab.grading import ledger, sandbox_runner
from conftest import run_course

STEM = "05_frameworks_torch"
TORCH_CELLS = {
    "test_function": 3.0,
    "test_train": 2.0,
    "test_momentum_none": 1.0,
    "test_eval": 2.0,
    "test_state_dict": 2.0,
}

# Each blinding defines CALL(fn, *args): how the wrapper reaches F.batch_norm unseen.
BLINDINGS = {
    "patched_save": """
import bnlab.checks.harness as _harness
if not getattr(_harness.Probe, "_blinded", False):
    _real_save = _harness.Probe.save

    def _save(self, folder):
        self.framework_calls.clear()
        return _real_save(self, folder)

    _harness.Probe.save = _save
    _harness.Probe._blinded = True


def CALL(fn, *args, **kwargs):
    return fn(*args, **kwargs)
""",
    "other_thread": """
import threading


def CALL(fn, *args, **kwargs):
    box = {}

    def run():
        box["value"] = fn(*args, **kwargs)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if "value" not in box:
        raise RuntimeError("the call in the other thread failed")
    return box["value"]
""",
    "setprofile_none": """
import sys


def CALL(fn, *args, **kwargs):
    sys.setprofile(None)
    return fn(*args, **kwargs)
""",
}

FUNCTION_CELL = """
import torch.nn.functional as F


class BatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        with torch.enable_grad():
            xd = x.detach().requires_grad_()
            wd = weight.detach().requires_grad_()
            bd = bias.detach().requires_grad_()
            out = CALL(F.batch_norm, xd, None, None, wd, bd, True, 0.0, eps)
        ctx.save_for_backward(xd, wd, bd, out)
        return out.detach()

    @staticmethod
    def backward(ctx, grad_out):
        xd, wd, bd, out = ctx.saved_tensors
        dx, dw, db = CALL(torch.autograd.grad, out, (xd, wd, bd), grad_out, retain_graph=True)
        return dx, dw, db, None
"""

WRAPPED_FORWARD = """
    def forward(self, x):
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        batch = self.training or self.running_mean is None
        return CALL(
            F.batch_norm, x, self.running_mean, self.running_var, self.weight, self.bias,
            batch, factor, self.eps,
        )

"""


def blinded_answers(blinding: str) -> dict[str, str]:
    """Both answer cells wrap F.batch_norm through `blinding`; the module keeps the solution's
    constructor (parameters, buffers) and replaces its forward."""
    modules = solution_source(STEM, "modules")
    start = modules.index("    def forward(self, x):")
    end = modules.index("    @torch.no_grad()")
    modules = modules[:start] + WRAPPED_FORWARD.lstrip("\n") + modules[end:]
    return {
        "BatchNormFunction": BLINDINGS[blinding] + FUNCTION_CELL,
        "modules": modules,
    }


def _torch_namespace(answers: dict[str, str]) -> dict:
    import torch
    from torch import nn

    namespace = {"torch": torch, "nn": nn, "__name__": "__main__"}
    for code in answers.values():
        exec(compile(code, "<answer>", "exec"), namespace)
    return namespace


def _grade_in_process(namespace: dict, blocked: bool, tmp_path: Path) -> dict[str, bool]:
    """check id -> passed, through the runner's own probe path (probe, save, load, judge)."""
    out = {}
    for check_id in (
        "torch.function",
        "torch.train",
        "torch.momentum_none",
        "torch.eval",
        "torch.state_dict",
    ):
        spec = CHECKS[check_id]
        item = {"check": check_id, "names": spec_names(check_id), "seed": 3}
        if blocked:
            probe = sandbox_runner._blocked_probe(_checks(), namespace, item, Probe)
        else:
            probe = sandbox_runner._probe(_checks(), namespace, item, Probe)
        folder = tmp_path / f"{check_id}-{blocked}"
        probe.save(folder)
        probe = Probe.load(folder)
        verdict = spec.module.judge(spec.prop, spec.module.cases(spec.prop, 3), probe, spec.what)
        out[check_id] = verdict.passed
    return out


def _checks():
    from bnlab import checks

    return checks


def spec_names(check_id: str) -> list[str]:
    return (
        ["BatchNormFunction"] if check_id == "torch.function" else ["BatchNorm1d", "BatchNorm2d"]
    )


@pytest.fixture
def restore_guard():
    """The patched-save blinding changes the harness class for the whole process: undo it."""
    from bnlab.checks import harness

    save = harness.Probe.save
    yield
    harness.Probe.save = save
    if hasattr(harness.Probe, "_blinded"):
        del harness.Probe._blinded


@pytest.mark.parametrize("blinding", sorted(BLINDINGS))
def test_blinding_beats_the_guard_alone_but_not_the_kernel_block(
    blinding, tmp_path, restore_guard
):
    pytest.importorskip("torch")
    namespace = _torch_namespace(blinded_answers(blinding))
    guard_only = _grade_in_process(namespace, blocked=False, tmp_path=tmp_path)
    assert all(guard_only.values()), guard_only  # the blinding is real: the guard is blind
    blocked = _grade_in_process(namespace, blocked=True, tmp_path=tmp_path)
    assert not any(blocked.values()), blocked


def test_honest_solution_passes_under_the_kernel_block(tmp_path):
    pytest.importorskip("torch")
    answers = {cid: solution_source(STEM, cid) for cid in ("BatchNormFunction", "modules")}
    namespace = _torch_namespace(answers)
    assert all(_grade_in_process(namespace, blocked=True, tmp_path=tmp_path).values())


def test_the_block_is_lifted_after_each_probe():
    """The notebook's own comparison cell (torch.nn.BatchNorm2d in a training loop) runs
    between probes: outside a probe the real layers work, and every swapped function is back."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = torch.randn(6, 3)
    code = F.batch_norm.__code__
    with sandbox_runner.KernelBlock() as block:
        with pytest.raises(RuntimeError, match="switched off"):
            torch.nn.BatchNorm1d(3)(x)
        with pytest.raises(RuntimeError, match="switched off"):
            torch.ops.aten.native_batch_norm(x, None, None, None, None, True, 0.1, 1e-5)
        assert block._swapped
    assert F.batch_norm.__code__ is code
    assert torch.nn.BatchNorm1d(3)(x).shape == x.shape


@pytest.mark.skipif(
    shutil.which("bwrap") is None and os.environ.get("CI") != "true",
    reason="bubblewrap is not installed (sudo apt-get install bubblewrap)",
)
def test_blindings_earn_nothing_through_the_sandboxed_grader(tmp_path):
    """One batch through `bn-course grade`: the three blindings beside the honest solution and
    a wrong baseline (running variance stored biased: loses every running-statistics cell)."""
    pytest.importorskip("torch")
    root = tmp_path / "course"
    env = {"BNLAB_COURSE_ROOT": str(root)}
    run_course("release", STEM, env=env)
    wrong = solution_source(STEM, "modules").replace(
        "var = x.var(dim=dims, unbiased=False) * n / max(n - 1, 1)",
        "var = x.var(dim=dims, unbiased=False)",
    )
    students = {
        "honest": {},
        "wrong_biased_var": {"modules": wrong},
        **{f"blind_{name}": blinded_answers(name) for name in BLINDINGS},
    }
    for student, answers in students.items():
        folder = root / "submitted" / student / STEM
        folder.mkdir(parents=True)
        (folder / f"{STEM}.ipynb").write_text(json.dumps(submission(STEM, answers)))
    run_course("grade", STEM, "--workers", "2", "--no-progress", "--no-feedback", env=env)
    gb = ledger.open_gradebook(f"sqlite:///{root / 'gradebook.db'}")
    try:
        rows = {r["student"]: json.loads(r["summary"]) for r in ledger.rows(gb, STEM)}
    finally:
        gb.close()
    got = {s: {g: c["score"] for g, c in r["cells"].items()} for s, r in rows.items()}
    assert got["honest"] == TORCH_CELLS
    assert got["wrong_biased_var"] == {
        **TORCH_CELLS,
        "test_train": 0.0,
        "test_momentum_none": 0.0,
        "test_eval": 0.0,
    }
    for name in BLINDINGS:
        assert got[f"blind_{name}"] == dict.fromkeys(TORCH_CELLS, 0.0), name
        cells = rows[f"blind_{name}"]["cells"]
        if name != "patched_save":  # that one drops the recorded calls; the call still failed
            assert "wraps the framework's batch norm" in cells["test_function"]["diagnoses"]
