"""The machinery every check is built from: probes, verdicts, tolerances, diagnoses.

A check is split in two, so that the learner's code never decides its own grade:

* a **probe** runs the learner's functions on seeded inputs and returns plain data: a dict of
  NumPy arrays (and strings for errors and framework calls). It is the only part that touches
  learner code.
* a **judge** is a function of that data alone: it computes the references with the real
  framework layers, compares with tolerances that follow the precision of the input, and names
  the mistake when an answer matches a known wrong variant.

In a notebook both run in the learner's kernel (visible checks, nbgrader tests); the grader can
run the probe in a sandbox and the judge in its own process on the returned arrays.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "jaxlib", "tf_keras")


class Failure(AssertionError):
    """A check failed; the message is written for the learner, the verdict kept for graders."""

    def __init__(self, verdict):
        super().__init__(verdict.message)
        self.verdict = verdict


@dataclass
class Verdict:
    prop: str
    passed: bool
    message: str
    diagnosis: str | None = None  # the name of the matched mistake, if any

    def __post_init__(self):
        # Every named mistake is spelled out the same way, for learners and for reports.
        tag = f"Diagnosis: {self.diagnosis}."
        if self.diagnosis and self.diagnosis != "exception" and tag[:-1] not in self.message:
            self.message = f"{tag} {self.message}"


@dataclass
class Probe:
    """What a probe hands back: arrays, plus errors and framework calls per case."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    framework_calls: list[str] = field(default_factory=list)
    # Read back from a sandbox's /out, which the learner's code can rewrite: then every message
    # in it is shown as quoted, labelled learner output, the probe's own wording included.
    from_sandbox: bool = False

    def save(self, folder) -> None:
        """Write as data only: arrays.npz (no pickles) and messages.json."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "arrays.npz", **self.arrays)
        meta = {"errors": self.errors, "framework_calls": self.framework_calls}
        (folder / "messages.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder) -> Probe:
        folder = Path(folder)
        with np.load(folder / "arrays.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads((folder / "messages.json").read_text())
        errors = {str(k): str(v) for k, v in dict(meta["errors"]).items()}
        return cls(arrays, errors, [str(c) for c in meta["framework_calls"]])


NORMALIZATION_NAMES = (
    "batch_norm",
    "batchnorm",
    "batch_normalization",
    "instance_norm",
    "group_norm",
    "layer_norm",
    "fusedbatchnorm",
)


BLOCKED_MESSAGE = (
    "{name}: the framework's own normalization is switched off while your code is graded; "
    "write the normalization with tensor operations (mean, var, sqrt, ...)"
)
REFUSED_CALLS: list[str] = []  # filled by the grading sandbox's KernelBlock


def note_refused(label: str) -> None:
    """A framework normalization refused by the grading sandbox (its KernelBlock)."""
    if label not in REFUSED_CALLS and len(REFUSED_CALLS) < 20:
        REFUSED_CALLS.append(label)


def numpy_exercise_forbids(name: str) -> bool:
    """In a NumPy exercise every call into a deep-learning framework is off limits."""
    return name.partition(":")[0].split(".", 1)[0] in FRAMEWORKS


def framework_exercise_forbids(name: str) -> bool:
    """In a PyTorch/Keras exercise the framework is allowed, its own normalization layers not
    (F.batch_norm, torch.batch_norm, aten ops, nn.BatchNorm*, keras BatchNormalization,
    tf.nn.batch_normalization, fused kernels, and the other normalizations built on them)."""
    # Judge the defining module and the function's own name, not the class it was reached
    # through: the learner's `BatchNormFunction.apply` runs torch's Function.apply.
    module, _, qualname = name.partition(":")
    final = qualname.rsplit(".", 1)[-1].lower()
    return module.split(".", 1)[0] in FRAMEWORKS and any(
        n in module.lower() or n in final for n in NORMALIZATION_NAMES
    )


class FrameworkGuard:
    """Record calls into deep-learning frameworks made while learner code runs.

    A NumPy exercise solved by calling ``torch.nn.functional.batch_norm`` (directly, through a
    helper, or under another name) earns nothing; ``sys.setprofile`` sees Python and C calls
    alike, whatever name the function was imported under.
    """

    def __init__(self, forbidden: Callable[[str], bool] | None = None):
        self.calls: list[str] = []
        self.forbidden = forbidden or numpy_exercise_forbids

    @staticmethod
    def _module_of(frame, event, arg) -> str:
        if event == "c_call":
            owner = getattr(arg, "__self__", None)
            module = getattr(arg, "__module__", None) or type(owner).__module__
            return f"{module or ''}:{getattr(arg, '__qualname__', getattr(arg, '__name__', ''))}"
        if event == "call":
            return f"{frame.f_globals.get('__name__', '')}:{frame.f_code.co_qualname}"
        return ""

    def _hook(self, frame, event, arg):
        if event in ("call", "c_call"):
            name = self._module_of(frame, event, arg)
            if self.forbidden(name) and len(self.calls) < 20:
                self.calls.append(name)

    def __enter__(self):
        self._previous = sys.getprofile()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self._previous)
        return False


def call_learner(probe: Probe, key: str, fn: Callable, *args, forbidden=None, **kwargs):
    """Call learner code under the framework guard; record an exception instead of raising."""
    guard = FrameworkGuard(forbidden)
    try:
        # Warnings from learner code (0/0 and the like) would reach stderr, which nbgrader
        # scores as a failed cell; the checks report such problems themselves.
        with warnings.catch_warnings(), np.errstate(all="ignore"), guard:
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - any learner error becomes a message
        probe.errors[key] = f"{type(err).__name__}: {err}"[:500]
        return None
    finally:
        for name in guard.calls:
            if name not in probe.framework_calls:
                probe.framework_calls.append(name)


def snapshot(value, dtype=None) -> np.ndarray | None:
    """Learner state as it is *now*: a detached, C-contiguous copy in a plain ndarray.

    Every probe records learner values through this function and nothing else. Learner code
    may keep a reference to what it returned or exposed and change it in place later
    (``self.running_mean *= 1 - m``, ``buf.add_(...)``, ``var.assign(...)``): a probe that
    stored the object itself would hand the judge the value after the last step. Accepts NumPy
    arrays (and subclasses, views), scalars, nested lists, torch tensors (with or without grad,
    on any device), TensorFlow tensors and variables and Keras variables; returns None for
    anything that is not numeric array-like. No framework is imported here.
    """
    try:
        top = type(value).__module__.split(".", 1)[0]
        if top == "torch":
            value = value.detach().cpu()
            if not value.dtype.is_complex and value.is_floating_point() and value.itemsize < 4:
                value = value.float()  # bfloat16/float16: NumPy has no bfloat16
            value = value.numpy()
        elif top in ("tensorflow", "keras", "tf_keras") and hasattr(value, "numpy"):
            value = value.numpy()
        arr = np.array(value, dtype=dtype, copy=True, order="C", subok=False)
    except Exception:  # noqa: BLE001
        return None
    if arr.dtype == object:
        return None
    return arr


def forward_atol(x, gamma, beta, eps, k: float = 32.0) -> np.ndarray:
    """Absolute tolerance per feature for a BN output, following the precision of x.

    A value at mean mu and spread sd carries about u * |mu| of absolute error (u: the unit
    roundoff of x's dtype); normalization divides it by sqrt(sd^2 + eps) and gamma scales it.
    So a float32 feature at mean 1e4 is only known to ~1e-3 and is judged accordingly, while a
    float64 feature at mean 0 is judged to ~1e-14.
    """
    u = np.finfo(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64).eps
    x64 = np.asarray(x, dtype=np.float64)
    axes = (0,) if x64.ndim == 2 else (0, 2, 3)
    mu = np.abs(x64.mean(axis=axes))
    sd = x64.std(axis=axes)
    cond = (mu + sd) / np.sqrt(sd**2 + eps) + 1.0
    atol = k * u * (np.abs(gamma) * cond + np.abs(beta) + 1.0) + 1e-12
    return atol if x64.ndim == 2 else atol.reshape(1, -1, 1, 1)


def close(got, want, atol, rtol: float = 1e-7) -> bool:
    if got is None or np.shape(got) != np.shape(want):
        return False
    got = np.asarray(got, dtype=np.float64)
    return bool(np.all(np.abs(got - want) <= atol + rtol * np.abs(want)))


def describe_difference(got, want, label: str) -> str:
    if got is None:
        return f"{label}: no array was returned"
    if np.shape(got) != np.shape(want):
        return f"{label}: shape {np.shape(got)}, expected {np.shape(want)}"
    got = np.asarray(got, dtype=np.float64)
    if not np.all(np.isfinite(got)):
        return f"{label}: contains NaN or inf"
    err = np.abs(got - want)
    idx = np.unravel_index(int(np.argmax(err)), err.shape)
    return (
        f"{label}: largest difference {err.max():.3g} at index {tuple(int(i) for i in idx)} "
        f"(got {got[idx]:.6g}, expected {want[idx]:.6g})"
    )


def compare_named(prop, got, want, label, mistakes=(), atol=1e-9, rtol=1e-7):
    """None when `got` equals `want` (float64 tolerances by default); otherwise a failing
    Verdict that says where they differ and names the first known mistake (name, its output,
    advice) that `got` reproduces."""
    if close(got, want, atol, rtol):
        return None
    detail = describe_difference(got, want, label)
    for name, alternative, advice in mistakes:
        if alternative is not None and close(got, alternative, atol, rtol):
            return Verdict(prop, False, f"{detail}. {advice}", name)
    return Verdict(prop, False, detail)


def _axes(a, channel_axis: int | None = None) -> tuple[int, ...]:
    """The axes a BN reduces over: all but the channel axis (PyTorch's 1 by default)."""
    if channel_axis is None:
        return (0,) if np.ndim(a) == 2 else (0, 2, 3)
    keep = channel_axis % np.ndim(a)
    return tuple(d for d in range(np.ndim(a)) if d != keep)


def output_property_hint(got, want, channel_axis: int | None = None) -> str:
    """For a wrong BN output that matches no named mistake: which property broke (per-feature
    mean, per-feature scale, or neither: values mixed between samples) and what that implies."""
    ranks = (2, 4) if channel_axis is None else range(2, 6)
    if got is None or np.shape(got) != np.shape(want) or np.ndim(want) not in ranks:
        return ""
    got = np.asarray(got, np.float64)
    if not np.all(np.isfinite(got)):
        return ""
    axes = _axes(want, channel_axis)
    gm, wm = got.mean(axis=axes), want.mean(axis=axes)
    gs, ws = got.std(axis=axes), want.std(axis=axes)
    scale = max(1.0, float(np.abs(ws).max()))
    mean_off = not np.allclose(gm, wm, rtol=1e-3, atol=1e-3 * scale)
    scale_off = not np.allclose(gs, ws, rtol=1e-3, atol=1e-6)
    worst = int(np.argmax(np.abs(gm - wm) if mean_off else np.abs(gs - ws)))
    if mean_off and scale_off:
        return (
            f" Property: both the per-feature mean and scale of the output are off (feature "
            f"{worst}: mean {gm[worst]:.4g} vs {wm[worst]:.4g}, spread {gs[worst]:.4g} vs "
            f"{ws[worst]:.4g}): check the statistics themselves (which axis, which variance)."
        )
    if mean_off:
        return (
            f" Property: the per-feature mean of the output is off (feature {worst}: "
            f"{gm[worst]:.4g}, expected {wm[worst]:.4g}) while its spread is right: the shift "
            "is wrong (the mean subtracted, or beta)."
        )
    if scale_off:
        return (
            f" Property: the per-feature spread of the output is off (feature {worst}: "
            f"{gs[worst]:.4g}, expected {ws[worst]:.4g}, ratio {gs[worst] / ws[worst]:.4g}) "
            "while its mean is right: the scale is wrong (the division by sqrt(var + eps), "
            "or gamma)."
        )
    return (
        " Property: each feature has the right mean and spread, but the values are not where "
        "they belong: samples or positions are mixed (a reshape or transpose, or statistics "
        "broadcast along the wrong axis)."
    )


def dx_property_hint(got, want, x, eps, channel_axis: int | None = None) -> str:
    """For a wrong dx: the two identities of the BN gradient, per feature. dx sums to zero
    over the batch (the path through the mean) and is orthogonal to x_hat (the path through
    the variance), up to the eps term; compared with the true dx's own values."""
    ranks = (2, 4) if channel_axis is None else range(2, 6)
    if got is None or np.shape(got) != np.shape(want) or np.ndim(want) not in ranks:
        return ""
    got = np.asarray(got, np.float64)
    if not np.all(np.isfinite(got)):
        return ""
    axes = _axes(want, channel_axis)
    x = np.asarray(x, np.float64)
    x_hat = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    tol = 1e-6 * max(1.0, float(np.abs(want).sum(axis=axes).max()))
    hints = []
    if not np.allclose(got.sum(axis=axes), want.sum(axis=axes), atol=tol, rtol=1e-6):
        hints.append(
            "dx does not sum to zero over the batch for every feature (the gradient through "
            "the batch mean is missing or wrong)"
        )
    if not np.allclose(
        (got * x_hat).sum(axis=axes), (want * x_hat).sum(axis=axes), atol=tol, rtol=1e-6
    ):
        hints.append(
            "dx is not orthogonal to x_hat over the batch (the gradient through the batch "
            "variance is missing or wrong)"
        )
    if not hints:
        return (
            " Property: dx sums to zero and is orthogonal to x_hat, as it should, so the mean "
            "and variance paths are right: the direct term (dout * gamma / sqrt(var + eps)) is "
            "wrong."
        )
    return " Property: " + "; ".join(hints) + "."


def diagnose(got, variants: dict[str, tuple[np.ndarray, str]], atol) -> tuple[str, str] | None:
    """The first known mistake whose output the learner's answer reproduces."""
    for name, (want, advice) in variants.items():
        if want is not None and close(got, want, atol):
            return name, advice
    return None


def framework_verdict(prop: str, probe: Probe, what: str, numpy: bool = True) -> Verdict | None:
    if not probe.framework_calls:
        return None
    calls = probe.framework_calls[:3]
    if probe.from_sandbox:
        shown = ", ".join(quote_learner(c, 120) for c in calls)
    else:
        shown = ", ".join(calls)
    if numpy:
        return Verdict(
            prop,
            False,
            f"{what} called a deep-learning framework ({shown}). This exercise is about writing "
            "batch normalization in NumPy: framework calls earn no points for this part. Use "
            "only NumPy operations.",
            diagnosis="framework call",
        )
    return Verdict(
        prop,
        False,
        f"{what} calls the framework's own normalization ({shown}). The point is to build it "
        "yourself from tensor operations (mean, var, sqrt, ...): a layer that wraps the "
        "built-in batch norm earns nothing for the parts it fakes.",
        diagnosis="wraps the framework's batch norm",
    )


def quote_learner(text: str, limit: int = 500) -> str:
    """Text that came from learner code (an exception's message, printed output), shown only as
    a quoted, labelled excerpt: it cannot pass for the grader's own words ("ok [...]")."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + "..."
    return "[from your code] " + repr(text)


# Messages the probes themselves write (not learner text): shown as they are.
OWN_MESSAGES = (
    "returned ",
    "out is not an array",
    "the forward pass did not return",
    "the backward pass must return",
    "torch could not load your state_dict",
    "the rank's process",  # bnlab.checks.ranks
)


SANDBOX_LABEL = "[reported from the sandbox your code ran in] "


def error_verdict(prop: str, probe: Probe) -> Verdict | None:
    if probe.errors and probe.from_sandbox:
        # Nothing read from the sandbox can pass for the grader's own words.
        key, message = next(iter(probe.errors.items()))
        report = " ".join(f"{key} raised {message}".split())
        if len(report) > 600:
            report = report[:600] + "..."
        return Verdict(
            prop, False, "an error: " + SANDBOX_LABEL + repr(report), diagnosis="exception"
        )
    if probe.errors:
        key, message = next(iter(probe.errors.items()))
        key = " ".join(str(key).split())[:120]
        name, sep, rest = str(message).partition(": ")
        if sep and name.replace(".", "").isidentifier():  # an exception: "ValueError: ..."
            shown = f"raised {name}: {quote_learner(rest)}"
        elif str(message).startswith(OWN_MESSAGES):  # the probe's own words: no "raised"
            shown = ": " + str(message)[:500]
        else:
            shown = "raised " + quote_learner(message)
        sep = "" if shown.startswith(":") else " "
        return Verdict(prop, False, f"{key}{sep}{shown}", diagnosis="exception")
    return None
