"""The checks learners run in their notebooks, and that nbgrader's test cells call.

    checks.check("forward.normalizes", batchnorm_forward)             # a visible test
    checks.check("forward.normalizes", batchnorm_forward, seed=11)    # the same, other inputs

Each check probes the learner's code on seeded inputs (bnlab.checks.harness: only arrays come
back), judges those arrays against the real framework layers, prints one line when it passes
and raises an AssertionError that names the mistake when it does not. Nothing here contains a
solution.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from bnlab.checks.harness import Failure, Verdict


@dataclass(frozen=True)
class Spec:
    module_name: str  # bnlab.checks.<module_name>: the exercise's cases, probe and judge
    prop: str  # the property judged
    stem: str  # the assignment whose notebook defines the learner's code
    names: tuple[str, ...]  # the learner's functions/classes the probe takes, in order

    @property
    def module(self) -> ModuleType:
        """The exercise's module, imported on first use: a notebook (or a grading sandbox)
        loads only the checks of its own assignment."""
        return importlib.import_module(f"{__name__}.{self.module_name}")

    @property
    def what(self) -> str:
        return self.names[-1] if self.module_name != "torch_layers" else "/".join(self.names)


_FWD = ("batchnorm_forward",)
_BWD = ("batchnorm_forward", "batchnorm_backward")
_MODULES = ("BatchNorm1d", "BatchNorm2d")
CHECKS = {
    **{
        f"forward.{p}": Spec("forward", p, "02_forward_pass", _FWD)
        for p in ("shape", "normalizes", "affine", "torch", "keras", "eps", "large_mean")
    },
    "forward.spatial": Spec(
        "forward", "spatial", "02_forward_pass", ("spatial_batchnorm_forward",)
    ),
    **{
        f"backward.{p}": Spec("backward", p, "03_backward_pass", _BWD)
        for p in ("dx", "dgamma", "dbeta")
    },
    "backward.fast": Spec(
        "backward", "fast", "03_backward_pass", ("batchnorm_forward", "batchnorm_backward_fast")
    ),
    "backward.spatial": Spec(
        "backward",
        "spatial",
        "03_backward_pass",
        ("spatial_batchnorm_forward", "spatial_batchnorm_backward"),
    ),
    **{
        f"running.{p}": Spec("running", p, "04_train_vs_inference", ("BatchNorm1d",))
        for p in ("init", "modes", "mean", "var", "eval", "backward")
    },
    **{
        f"{family}.{p}": Spec("beyond", f"{short}_{p}", "08_beyond_batchnorm", names)
        for family, short, props, names in (
            ("layernorm", "ln", ("forward",), ("layernorm_forward",)),
            ("layernorm", "ln", ("backward",), ("layernorm_forward", "layernorm_backward")),
            ("groupnorm", "gn", ("forward", "affine"), ("groupnorm_forward",)),
            ("groupnorm", "gn", ("backward",), ("groupnorm_forward", "groupnorm_backward")),
            ("fold", "fold", ("dense", "conv"), ("fold_batchnorm",)),
            ("renorm", "renorm", ("limits", "clip"), ("batchrenorm_forward",)),
            ("renorm", "renorm", ("backward",), ("batchrenorm_backward",)),
        )
        for p in props
    },
    "torch.function": Spec(
        "torch_layers", "function", "05_frameworks_torch", ("BatchNormFunction",)
    ),
    **{
        f"torch.{p}": Spec("torch_layers", p, "05_frameworks_torch", _MODULES)
        for p in ("train", "momentum_none", "eval", "state_dict")
    },
    **{
        f"keras.{p}": Spec("keras_layers", p, "05_frameworks_keras", ("BatchNormalization",))
        for p in ("train", "inference", "weights", "axis", "fit")
    },
    **{
        f"sync.{p}": Spec("sync_layers", p, "10_batchnorm_at_scale", ("SyncBatchNorm",))
        for p in ("forward", "backward", "running")
    },
    "keras.custom_gradient": Spec(
        "keras_layers", "custom_gradient", "05_frameworks_keras", ("batchnorm_custom_gradient",)
    ),
}


# The exercises written with a framework (PyTorch, Keras); every other check is NumPy.
FRAMEWORK_MODULES = ("torch_layers", "keras_layers", "sync_layers")


def framework_stems() -> list[str]:
    """The assignments whose exercises use a deep-learning framework."""
    return sorted({s.stem for s in CHECKS.values() if s.module_name in FRAMEWORK_MODULES})


def run(check_id: str, *learner, seed: int = 0) -> Verdict:
    """Probe and judge; return the verdict without raising."""
    spec = CHECKS[check_id]
    cases = spec.module.cases(spec.prop, seed)
    probe = spec.module.probe(*learner, cases)
    return spec.module.judge(spec.prop, cases, probe, spec.what)


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
