"""The checks learners run in their notebooks, and that nbgrader's test cells call.

    checks.check("forward.normalizes", batchnorm_forward)             # a visible test
    checks.check("forward.normalizes", batchnorm_forward, seed=11)    # the same, other inputs

Each check probes the learner's code on seeded inputs (bnlab.harness: only arrays come back),
judges those arrays against the real framework layers, prints one line when it passes and raises
an AssertionError that names the mistake when it does not. Nothing here contains a solution.
"""

from __future__ import annotations

import time

import numpy as np

from bnlab.exercises import backward, forward, running
from bnlab.harness import Failure, Verdict

# check id -> (exercise module, property, what the learner wrote)
CHECKS = {
    "forward.shape": (forward, "shape", "batchnorm_forward"),
    "forward.normalizes": (forward, "normalizes", "batchnorm_forward"),
    "forward.affine": (forward, "affine", "batchnorm_forward"),
    "forward.torch": (forward, "torch", "batchnorm_forward"),
    "forward.keras": (forward, "keras", "batchnorm_forward"),
    "forward.eps": (forward, "eps", "batchnorm_forward"),
    "forward.large_mean": (forward, "large_mean", "batchnorm_forward"),
    "forward.spatial": (forward, "spatial", "spatial_batchnorm_forward"),
    "backward.dx": (backward, "dx", "batchnorm_backward"),
    "backward.dgamma": (backward, "dgamma", "batchnorm_backward"),
    "backward.dbeta": (backward, "dbeta", "batchnorm_backward"),
    "backward.fast": (backward, "fast", "batchnorm_backward_fast"),
    "backward.spatial": (backward, "spatial", "spatial_batchnorm_backward"),
    "running.init": (running, "init", "BatchNorm1d"),
    "running.modes": (running, "modes", "BatchNorm1d"),
    "running.mean": (running, "mean", "BatchNorm1d"),
    "running.var": (running, "var", "BatchNorm1d"),
    "running.eval": (running, "eval", "BatchNorm1d"),
    "running.backward": (running, "backward", "BatchNorm1d"),
}


def run(check_id: str, *learner, seed: int = 0) -> Verdict:
    """Probe and judge; return the verdict without raising."""
    module, prop, what = CHECKS[check_id]
    cases = module.cases(prop, seed)
    probe = module.probe(*learner, cases)
    return module.judge(prop, cases, probe, what)


def check(check_id: str, *learner, seed: int = 0) -> None:
    """Run one check; print a line when it passes, raise AssertionError when it does not.

    Returns nothing, so that a notebook cell ending with a check shows only its message.
    """
    verdict = run(check_id, *learner, seed=seed)
    if not verdict.passed:
        raise Failure(verdict)
    print(f"ok [{check_id}]: {verdict.message}")


def report_speedup(
    batchnorm_forward, batchnorm_backward, batchnorm_backward_fast, shape=(256, 512), repeat=20
):
    """Time the staged and the closed-form backward passes on one batch (never fails)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    gamma, beta = np.ones(shape[1]), np.zeros(shape[1])
    dout = rng.standard_normal(shape)
    _, cache = batchnorm_forward(x, gamma, beta)
    timings = {}
    for name, fn in (("staged", batchnorm_backward), ("closed form", batchnorm_backward_fast)):
        fn(dout, cache)  # warm-up
        start = time.perf_counter()
        for _ in range(repeat):
            fn(dout, cache)
        timings[name] = (time.perf_counter() - start) / repeat
    ratio = timings["staged"] / timings["closed form"]
    print(
        f"staged backward {1e3 * timings['staged']:.2f} ms, closed form "
        f"{1e3 * timings['closed form']:.2f} ms on x of shape {shape}: speed-up {ratio:.1f}x"
    )
    return ratio
