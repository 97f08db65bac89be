"""Checks of exercise 8, *beyond BatchNorm*: LayerNorm, GroupNorm, folding BN, Batch Renorm.

    layernorm_forward(x, gamma, beta, eps=1e-5) -> (out, cache)          x (N, D)
    layernorm_backward(dout, cache) -> (dx, dgamma, dbeta)
    groupnorm_forward(x, gamma, beta, G, eps=1e-5) -> (out, cache)       x (N, C, H, W)
    groupnorm_backward(dout, cache) -> (dx, dgamma, dbeta)
    fold_batchnorm(W, b, gamma, beta, running_mean, running_var, eps) -> (W_folded, b_folded)
    batchrenorm_forward(x, gamma, beta, running_mean, running_var, r_max, d_max, eps=1e-5)
        -> (out, r, d)
    batchrenorm_backward(dout, x, gamma, r, d, eps=1e-5) -> (dx, dgamma, dbeta)

References are the real layers: ``F.layer_norm``, ``F.group_norm`` / ``nn.GroupNorm`` and
torch.autograd for the gradients; folding is judged by running an actual ``nn.Linear`` /
``nn.Conv2d`` (with and without bias, with padding) followed by ``nn.BatchNorm1d/2d`` in eval
mode, against the folded layer alone. Batch Renorm (Ioffe 2017) has no framework layer: it is
judged against the paper's equations written here in torch, and against its limiting cases with
the real BN (r_max = 1, d_max = 0 is training-mode BN; unclipped it is the inference transform
with the running statistics). Its gradient, with r and d held constant, is judged against
torch.autograd of those equations. Every reference and known mistake is computed with torch, so
nothing here is a NumPy answer (and the sandbox, which hides torch, cannot run any of it). Two
computations take the learner's numbers and are plain arithmetic, in NumPy where torch is
absent: GroupNorm's affine step applied to the learner's own x_hat, and the learner's folded
weights applied as a linear / convolutional layer (no batch norm in either).

`conv2d` is a small NumPy helper for the notebook's (ungraded) folding experiment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnlab.checks.harness import (
    Probe,
    Verdict,
    call_learner,
    close,
    describe_difference,
    diagnose,
    error_verdict,
    framework_verdict,
    output_property_hint,
    quote_learner,
    snapshot,
)
from bnlab.core.frameworks import import_torch
from bnlab.core.refcache import cached


# ----------------------------------------------------------------------------- helper
def conv2d(x, W, b=None, padding=0):
    """A plain 2-D convolution (cross-correlation, stride 1, zero padding), NumPy only.

    x (N, C_in, H, W), W (C_out, C_in, kh, kw), b (C_out,) or None; returns
    (N, C_out, H + 2 * padding - kh + 1, W + 2 * padding - kw + 1). For the notebook's
    experiments: it is not graded and not a reference.
    """
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    kh, kw = W.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    out = np.einsum("nchwij,ocij->nohw", windows, W)
    return out if b is None else out + np.reshape(b, (1, -1, 1, 1))


# ----------------------------------------------------------------------------- cases
@dataclass
class NormCase:
    name: str
    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    dout: np.ndarray
    eps: float
    G: int = 0  # groups (group norm only)


def _norm_case(
    name, shape, seed, mean=0.0, scale=1.0, dtype=np.float64, eps=1e-5, G=0, affine=True
):
    rng = np.random.default_rng(seed)
    n_affine = shape[1] if len(shape) == 4 else shape[-1]
    x = mean + scale * rng.standard_normal(shape) * rng.uniform(0.5, 2.0, size=shape[-1])
    gamma = rng.uniform(0.5, 2.0, n_affine) if affine else np.ones(n_affine)
    beta = rng.standard_normal(n_affine) if affine else np.zeros(n_affine)
    dout = rng.standard_normal(shape)
    return NormCase(
        name, x.astype(dtype), gamma.astype(dtype), beta.astype(dtype), dout.astype(dtype), eps, G
    )


@dataclass
class FoldCase:
    name: str
    kind: str  # "dense" | "conv"
    W: np.ndarray
    b: np.ndarray | None
    gamma: np.ndarray
    beta: np.ndarray
    running_mean: np.ndarray
    running_var: np.ndarray
    eps: float
    x: np.ndarray  # the batch both layers are run on (never shown to the learner's function)
    padding: int = 0


def _fold_case(name, kind, shape, seed, bias=True, eps=1e-5, dtype=np.float64, padding=1):
    rng = np.random.default_rng(seed)
    c_out = shape[0]
    W = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
    b = rng.standard_normal(c_out) if bias else None
    gamma = rng.uniform(0.5, 2.0, c_out) * rng.choice([-1.0, 1.0], c_out)
    beta = rng.standard_normal(c_out)
    running_mean = rng.normal(0.0, 2.0, c_out)
    running_var = rng.uniform(0.02, 3.0, c_out)
    if kind == "dense":
        x = rng.standard_normal((3 * shape[1] + 2, shape[1]))
    else:
        x = rng.standard_normal((2, shape[1], 6, 5))

    def cast(a):
        return None if a is None else a.astype(dtype)

    return FoldCase(
        name,
        kind,
        cast(W),
        cast(b),
        cast(gamma),
        cast(beta),
        cast(running_mean),
        cast(running_var),
        eps,
        x,
        padding,
    )


@dataclass
class RenormCase:
    name: str
    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    running_mean: np.ndarray
    running_var: np.ndarray
    r_max: float
    d_max: float
    eps: float
    # The gradient's cases only: the upstream gradient and the corrections the forward used,
    # computed here in NumPy (the probe hands them to batchrenorm_backward as constants).
    dout: np.ndarray | None = None
    r: np.ndarray | None = None
    d: np.ndarray | None = None


def _renorm_case(name, n, seed, r_max, d_max, eps=1e-5, dtype=np.float64, grad=False):
    """Features chosen so that every clip is active somewhere: batch spread far above and far
    below the running one (r at r_max and at 1/r_max), batch mean far from and near the running
    mean (d clipped and not). With grad=True the case also carries dout, r and d."""
    rng = np.random.default_rng(seed)
    spread = np.array([4.0, 0.2, 1.1, 2.5, 0.9, 0.25])
    offset = np.array([2.0, -0.1, -3.0, 0.2, 0.0, -1.5])
    running_mean = rng.normal(0.0, 1.0, spread.size)
    running_var = rng.uniform(0.8, 1.2, spread.size)
    z = rng.standard_normal((n, spread.size))
    z = (z - z.mean(0)) / z.std(0)  # the batch's spread and offset are the ones chosen above
    x = running_mean + offset * np.sqrt(running_var) + spread * np.sqrt(running_var) * z
    gamma, beta = rng.uniform(0.5, 2.0, spread.size), rng.standard_normal(spread.size)

    def c(a):
        return a.astype(dtype)

    case = RenormCase(
        name, c(x), c(gamma), c(beta), c(running_mean), c(running_var), r_max, d_max, eps
    )
    if grad:
        # r and d of Ioffe (2017), Algorithm 1, from the case's own (cast) values, in NumPy.
        xs = case.x.astype(np.float64)
        mu_b, sigma_b = xs.mean(axis=0), np.sqrt(xs.var(axis=0) + eps)
        sigma = np.sqrt(case.running_var.astype(np.float64) + eps)
        r = np.clip(sigma_b / sigma, 1.0 / r_max, r_max)
        d = np.clip((mu_b - case.running_mean.astype(np.float64)) / sigma, -d_max, d_max)
        case.dout, case.r, case.d = c(rng.standard_normal(x.shape)), c(r), c(d)
    return case


def cases(prop: str, seed: int) -> list:
    s = 70_000 + 1000 * seed
    if prop in ("ln_forward", "ln_backward"):
        return [
            _norm_case("float64", (6, 5), s + 1, mean=seed % 3, scale=1 + seed % 4),
            _norm_case("one-sample", (1, 8), s + 2, mean=-2.0),
            _norm_case("wide", (4, 64), s + 3, mean=3.0, scale=0.3, eps=1e-3),
            _norm_case("float32", (5, 16), s + 4, mean=1.0, dtype=np.float32),
        ]
    if prop in ("gn_forward", "gn_affine", "gn_backward"):
        plain = prop == "gn_forward"  # statistics alone: gamma = 1, beta = 0
        out = [
            _norm_case("C6-G3", (3, 6, 4, 5), s + 5, mean=1.0, scale=2.0, G=3, affine=not plain),
            _norm_case("C8-G2", (2, 8, 3, 3), s + 6, mean=-1.0, G=2, affine=not plain),
            _norm_case("C4-G4", (2, 4, 3, 2), s + 7, scale=0.5, G=4, affine=not plain),
            _norm_case(
                "float32",
                (2, 6, 5, 5),
                s + 8,
                mean=2.0,
                dtype=np.float32,
                eps=1e-3,
                G=2,
                affine=not plain,
            ),
        ]
        if prop == "gn_affine":  # the same inputs with gamma = 1, beta = 0: the learner's x_hat
            out += [
                NormCase(
                    f"{c.name}-plain",
                    c.x,
                    np.ones_like(c.gamma),
                    np.zeros_like(c.beta),
                    c.dout,
                    c.eps,
                    c.G,
                )
                for c in list(out)
            ]
        return out
    if prop == "fold_dense":
        return [
            _fold_case("dense", "dense", (5, 4), s + 9),
            _fold_case("dense-no-bias", "dense", (3, 6), s + 10, bias=False),
            _fold_case("dense-eps=0.1", "dense", (4, 4), s + 11, eps=0.1),
            _fold_case("dense-float32", "dense", (6, 3), s + 12, dtype=np.float32),
        ]
    if prop == "fold_conv":
        return [
            _fold_case("conv-3x3-pad1", "conv", (4, 4, 3, 3), s + 13, eps=0.05),
            _fold_case("conv-no-bias", "conv", (5, 3, 3, 3), s + 14, bias=False),
            _fold_case("conv-1x3-pad0", "conv", (2, 3, 1, 3), s + 15, padding=0),
            _fold_case("conv-float32", "conv", (3, 2, 3, 3), s + 16, dtype=np.float32),
        ]
    if prop == "renorm_limits":
        return [
            _renorm_case("r_max=1,d_max=0", 8, s + 17, 1.0, 0.0),
            _renorm_case("r_max=1,d_max=0-float32", 16, s + 18, 1.0, 0.0, dtype=np.float32),
            _renorm_case("unclipped", 8, s + 19, 1e6, 1e6),
            _renorm_case("unclipped-eps=0.1", 5, s + 20, 1e6, 1e6, eps=0.1),
        ]
    if prop == "renorm_clip":
        return [
            _renorm_case("r_max=2,d_max=1", 8, s + 21, 2.0, 1.0),
            _renorm_case("r_max=1.5,d_max=0.5", 32, s + 22, 1.5, 0.5, eps=1e-3),
            _renorm_case("float32", 16, s + 23, 3.0, 2.0, dtype=np.float32),
        ]
    if prop == "renorm_backward":
        return [
            _renorm_case("r_max=2,d_max=1", 8, s + 24, 2.0, 1.0, grad=True),
            _renorm_case("r_max=1.5,d_max=0.5", 32, s + 25, 1.5, 0.5, eps=1e-3, grad=True),
            _renorm_case("float32", 16, s + 26, 3.0, 2.0, dtype=np.float32, grad=True),
        ]
    raise KeyError(prop)


# ----------------------------------------------------------------------------- probes
def _record(pr: Probe, key: str, value) -> bool:
    arr = snapshot(value)
    if arr is None:
        return False
    pr.arrays[key] = arr
    return True


def probe(*args) -> Probe:
    """Dispatch on the cases: each exercise's functions run on every case of the check."""
    *learner, case_list = args
    first = case_list[0]
    if isinstance(first, FoldCase):
        return _probe_fold(*learner, case_list)
    if isinstance(first, RenormCase):
        if first.dout is not None:
            return _probe_renorm_backward(*learner, case_list)
        return _probe_renorm(*learner, case_list)
    return _probe_norm(*learner, case_list)


def _probe_norm(forward_fn, *rest):
    *backward, case_list = rest
    backward_fn = backward[0] if backward else None
    pr = Probe()
    for case in case_list:
        extra = (case.G,) if case.G else ()
        ret = call_learner(
            pr,
            case.name,
            forward_fn,
            case.x.copy(),
            case.gamma.copy(),
            case.beta.copy(),
            *extra,
            eps=case.eps,
        )
        if ret is None and case.name in pr.errors:
            continue
        if not (isinstance(ret, tuple) and len(ret) == 2):
            pr.errors[case.name] = (
                f"returned {type(ret).__name__}, not a pair (out, cache); "
                "end the function with `return out, cache`"
            )
            continue
        if not _record(pr, f"{case.name}.out", ret[0]):
            pr.errors[case.name] = "out is not an array"
            continue
        if backward_fn is None:
            continue
        grads = call_learner(pr, f"backward on {case.name}", backward_fn, case.dout.copy(), ret[1])
        if grads is None and f"backward on {case.name}" in pr.errors:
            continue
        if not (isinstance(grads, tuple) and len(grads) == 3):
            pr.errors[case.name] = "the backward pass must return (dx, dgamma, dbeta)"
            continue
        for name, value in zip(("dx", "dgamma", "dbeta"), grads, strict=True):
            _record(pr, f"{case.name}.{name}", value)
    return pr


def _probe_fold(fold_fn, case_list):
    pr = Probe()
    for c in case_list:
        b = None if c.b is None else c.b.copy()
        ret = call_learner(
            pr,
            c.name,
            fold_fn,
            c.W.copy(),
            b,
            c.gamma.copy(),
            c.beta.copy(),
            c.running_mean.copy(),
            c.running_var.copy(),
            c.eps,
        )
        if ret is None and c.name in pr.errors:
            continue
        if not (isinstance(ret, tuple) and len(ret) == 2):
            pr.errors[c.name] = f"returned {type(ret).__name__}, not a pair (W_folded, b_folded)"
            continue
        if not _record(pr, f"{c.name}.W", ret[0]):
            pr.errors[c.name] = "returned a W_folded that is not an array"
            continue
        if not _record(pr, f"{c.name}.b", ret[1]):
            pr.errors[c.name] = (
                "returned a b_folded that is not an array: the folded layer always has a bias "
                "(BN's shift), also when the original layer had none (b is None)"
            )
    return pr


def _probe_triples(fn, case_list, args, names: tuple[str, str, str]) -> Probe:
    """Call `fn(*args(case), eps=case.eps)` on every case; record the three arrays it returns
    under `names`."""
    pr = Probe()
    for c in case_list:
        ret = call_learner(pr, c.name, fn, *args(c), eps=c.eps)
        if ret is None and c.name in pr.errors:
            continue
        if not (isinstance(ret, tuple) and len(ret) == 3):
            pr.errors[c.name] = f"returned {type(ret).__name__}, not a triple ({', '.join(names)})"
            continue
        for name, value in zip(names, ret, strict=True):
            if not _record(pr, f"{c.name}.{name}", value):
                pr.errors[c.name] = f"returned {name} that is not an array"
                break
    return pr


def _probe_renorm(renorm_fn, case_list):
    def args(c):
        return (
            c.x.copy(),
            c.gamma.copy(),
            c.beta.copy(),
            c.running_mean.copy(),
            c.running_var.copy(),
            c.r_max,
            c.d_max,
        )

    return _probe_triples(renorm_fn, case_list, args, ("out", "r", "d"))


def _probe_renorm_backward(backward_fn, case_list):
    """The gradient alone, on the case's x, gamma, r and d (not the learner's forward), so that
    a mistake in batchrenorm_forward costs only the forward's tests."""

    def args(c):
        return (c.dout.copy(), c.x.copy(), c.gamma.copy(), c.r.copy(), c.d.copy())

    return _probe_triples(backward_fn, case_list, args, ("dx", "dgamma", "dbeta"))


# ----------------------------------------------------------------------------- references
def _t(a):
    torch = import_torch()
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def _interleave(x, groups: int):
    """Channels reordered so that channel c lands in group c % G (and back, with C // G)."""
    n, c, h, w = x.shape
    return x.reshape(n, c // groups, groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _norm_graph(case: NormCase, kind: str, x, g, b):
    """The forward graph of a normalization (or of a known mistake), in torch."""
    torch = import_torch()
    F = torch.nn.functional
    eps = case.eps
    if kind == "ln":
        return F.layer_norm(x, (x.shape[1],), g, b, eps)
    if kind == "ln-batch-axis":  # statistics over the batch: that is BN
        # Written out rather than F.batch_norm, which refuses a batch of one sample.
        mu = x.mean(dim=0, keepdim=True)
        var = ((x - mu) ** 2).mean(dim=0, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * g + b
    if kind == "ln-constants":
        mu = x.mean(dim=1, keepdim=True).detach()
        var = ((x - mu) ** 2).mean(dim=1, keepdim=True).detach()
        return (x - mu) / torch.sqrt(var + eps) * g + b
    view = (1, -1, 1, 1)
    if kind == "gn":
        return F.group_norm(x, case.G, g, b, eps)
    if kind == "gn-layer":  # G ignored: one group, layer norm over (C, H, W)
        return F.group_norm(x, 1, g, b, eps)
    if kind == "gn-instance":  # one group per channel: instance norm
        return F.instance_norm(x, eps=eps) * g.view(view) + b.view(view)
    if kind == "gn-interleaved":
        xh = F.group_norm(_interleave(x, case.G), case.G, eps=eps)
        return _interleave(xh, x.shape[1] // case.G) * g.view(view) + b.view(view)
    if kind == "gn-batch":  # the group's statistics taken over the batch too
        xg = x.reshape(x.shape[0], case.G, -1)
        mu = xg.mean(dim=(0, 2), keepdim=True)
        var = ((xg - mu) ** 2).mean(dim=(0, 2), keepdim=True)
        xh = ((xg - mu) / torch.sqrt(var + eps)).reshape(x.shape)
        return xh * g.view(view) + b.view(view)
    if kind == "gn-constants":
        n, c, h, w = x.shape
        xg = x.reshape(n, case.G, -1)
        mu = xg.mean(dim=2, keepdim=True).detach()
        var = ((xg - mu) ** 2).mean(dim=2, keepdim=True).detach()
        xh = ((xg - mu) / torch.sqrt(var + eps)).reshape(x.shape)
        return xh * g.view(view) + b.view(view)
    raise KeyError(kind)


@cached
def _norm_autograd(case: NormCase, kind: str) -> dict[str, np.ndarray]:
    """Output and gradients of a normalization graph by torch.autograd."""
    x = _t(case.x).requires_grad_(True)
    g = _t(case.gamma).requires_grad_(True)
    b = _t(case.beta).requires_grad_(True)
    out = _norm_graph(case, kind, x, g, b)
    out.backward(_t(case.dout))
    return {
        "out": out.detach().numpy(),
        "dx": x.grad.numpy(),
        "dgamma": g.grad.numpy(),
        "dbeta": b.grad.numpy(),
    }


@cached
def _groupnorm_module(case: NormCase) -> np.ndarray:
    """The same through the module ``torch.nn.GroupNorm``."""
    torch = import_torch()
    c = case.x.shape[1]
    layer = torch.nn.GroupNorm(case.G, c, eps=case.eps, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(_t(case.gamma))
        layer.bias.copy_(_t(case.beta))
        return layer(_t(case.x)).numpy()


def _u(dtype) -> float:
    return float(np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).eps)


def _norm_cond(case: NormCase) -> tuple[float, float]:
    """(condition of the normalization, group size): |mean| + std over sqrt(var + eps)."""
    x = np.asarray(case.x, np.float64)
    xg = x if x.ndim == 2 else x.reshape(x.shape[0], case.G, -1)
    ax = 1 if x.ndim == 2 else 2
    m, sd = np.abs(xg.mean(axis=ax)), xg.std(axis=ax)
    return float(np.max((m + sd + 1e-12) / np.sqrt(sd**2 + case.eps))), float(xg.shape[ax])


def _out_atol(case: NormCase) -> float:
    cond, _ = _norm_cond(case)
    g = float(np.max(np.abs(case.gamma.astype(np.float64))))
    b = float(np.max(np.abs(case.beta.astype(np.float64))))
    return 64 * _u(case.x.dtype) * (g * (cond + 1) + b + 1) + 1e-12


def _grad_atol(case: NormCase, want) -> float:
    cond, m = _norm_cond(case)
    scale = float(np.max(np.abs(want))) + 1.0
    return 256 * _u(case.x.dtype) * np.sqrt(max(m, case.x.shape[0])) * (cond + 1) * scale


def _affine_hint(got, want):
    """The BN-style property hint, for an LN (features on axis 1) or GN output."""
    try:
        return output_property_hint(got, want)
    except Exception:  # noqa: BLE001
        return ""


NORM_MISTAKES = {
    "ln": {
        "LN statistics over the batch axis": (
            "ln-batch-axis",
            "You normalized each feature over the batch (axis 0): that is batch norm. Layer "
            "norm takes one mean and one variance per sample, over its D features (axis 1, "
            "keepdims=True), so it works the same for a batch of one.",
        ),
    },
    "ln-grad": {
        "mean and variance treated as constants": (
            "ln-constants",
            "the per-sample mean and variance depend on every feature of that sample: dx "
            "needs the paths through them (dx = inv * (dx_hat - mean(dx_hat, axis=1) - x_hat * "
            "mean(dx_hat * x_hat, axis=1))).",
        ),
    },
    "gn": {
        "GN with G ignored (that is LN)": (
            "gn-layer",
            "You normalized each sample over all of (C, H, W): that is layer norm, GroupNorm "
            "with G = 1. Split the channels into G groups of C // G consecutive channels: "
            "x.reshape(N, G, -1), one mean and variance per (sample, group).",
        ),
        "GN with one group per channel (that is IN)": (
            "gn-instance",
            "You normalized each channel of each sample on its own (axes 2, 3): that is "
            "instance norm, GroupNorm with G = C. Group C // G consecutive channels together: "
            "x.reshape(N, G, -1).",
        ),
        "GN groups over the wrong axis": (
            "gn-interleaved",
            "Your groups take every G-th channel (x.reshape(N, C // G, G, H, W) reduced over "
            "axes 1, 3, 4): channel c ends up in group c % G. PyTorch's GroupNorm groups C // G "
            "consecutive channels: x.reshape(N, G, C // G, H, W), i.e. x.reshape(N, G, -1).",
        ),
        "GN statistics over the batch axis": (
            "gn-batch",
            "Your group statistics also average over the batch. GroupNorm is computed per "
            "sample: one mean and variance per (sample, group), never across samples.",
        ),
    },
    "gn-grad": {
        "mean and variance treated as constants": (
            "gn-constants",
            "each group's mean and variance depend on every value of that group: dx needs the "
            "paths through them, with means over the group's C // G * H * W values.",
        ),
    },
}


def _norm_variants(case: NormCase, family: str, grad: str):
    found = {}
    for name, (kind, advice) in NORM_MISTAKES[family].items():
        if kind == "gn-instance" and case.G == case.x.shape[1]:
            continue  # on this input it *is* the answer
        found[name] = (_norm_autograd(case, kind)[grad], advice)
    if family.startswith("ln") and grad != "out":  # mistakes of the forward show in dx too
        for name, (kind, advice) in NORM_MISTAKES["ln"].items():
            found[name] = (_norm_autograd(case, kind)[grad], advice)
    if family.startswith("gn") and grad != "out":
        for name, (kind, advice) in NORM_MISTAKES["gn"].items():
            if not (kind == "gn-instance" and case.G == case.x.shape[1]):
                found[name] = (_norm_autograd(case, kind)[grad], advice)
    return found


# ----------------------------------------------------------------------------- judges
def _case_error(prop, pr: Probe, name: str):
    keys = [k for k in pr.errors if k == name or k.endswith(f" on {name}")]
    if keys:
        sub = Probe(errors={k: pr.errors[k] for k in keys}, from_sandbox=pr.from_sandbox)
        return error_verdict(prop, sub)
    return None


def _fail(prop, detail, found=None, hint=""):
    if found:
        return Verdict(prop, False, f"{detail}. Diagnosis: {found[0]}. {found[1]}", found[0])
    return Verdict(prop, False, detail + "." + hint)


def _judge_norm(prop, case_list, pr, what):
    family = "ln" if prop.startswith("ln") else "gn"
    backward = prop.endswith("backward")
    ref_label = "torch.nn.functional.layer_norm" if family == "ln" else "F.group_norm"
    for case in case_list:
        early = _case_error(prop, pr, case.name)
        if early:
            return early
        ref = _norm_autograd(case, family)
        groups = f", G={case.G}" if case.G else ""
        where = f"on the {case.name} input of shape {case.x.shape}{groups}"
        if not backward:
            got, want = pr.arrays.get(f"{case.name}.out"), ref["out"]
            atol = _out_atol(case)
            if close(got, want, atol):
                continue
            detail = describe_difference(got, want, f"{what} vs {ref_label} {where}")
            found = diagnose(got, _norm_variants(case, family, "out"), atol)
            return _fail(prop, detail, found)
        for grad in ("dx", "dgamma", "dbeta"):
            got, want = pr.arrays.get(f"{case.name}.{grad}"), ref[grad]
            atol = _grad_atol(case, want)
            if close(got, want, atol, rtol=0.0):
                continue
            detail = describe_difference(got, want, f"{what}: {grad} vs torch.autograd {where}")
            sum_axes = (0,) if family == "ln" else (0, 2, 3)
            if (
                grad != "dx"
                and got is not None
                and got.ndim > 1
                and got.shape != want.shape
                and _sums_to(got, want, sum_axes)
            ):
                return Verdict(
                    prop,
                    False,
                    f"{detail}. Diagnosis: {grad} not summed over the batch. gamma and beta "
                    f"are shared by every sample{'' if family == 'ln' else ' and position'}: "
                    f"sum over axes {sum_axes}.",
                    f"{grad} not summed over the batch",
                )
            found = diagnose(got, _norm_variants(case, f"{family}-grad", grad), atol)
            return _fail(prop, detail, found)
    if family == "gn" and not backward:
        case = case_list[0]
        if not close(pr.arrays[f"{case.name}.out"], _groupnorm_module(case), _out_atol(case)):
            return Verdict(prop, False, "differs from torch.nn.GroupNorm")
    if backward:
        return Verdict(
            prop,
            True,
            f"dx, dgamma, dbeta match torch.autograd of {ref_label} on {len(case_list)} inputs",
        )
    if family == "ln":
        return Verdict(
            prop,
            True,
            f"matches {ref_label} on {len(case_list)} inputs "
            "(float64 and float32, a batch of one)",
        )
    return Verdict(
        prop,
        True,
        f"matches F.group_norm and nn.GroupNorm on {len(case_list)} "
        "inputs (G = 2, 3, 4; float64 and float32)",
    )


def _sums_to(got, want, axes):
    try:
        return bool(
            np.allclose(np.asarray(got, np.float64).sum(axis=axes), want, rtol=1e-5, atol=1e-8)
        )
    except (ValueError, np.exceptions.AxisError):
        return False


def _judge_gn_affine(prop, case_list, pr, what):
    half = len(case_list) // 2
    for full, plain in zip(case_list[:half], case_list[half:], strict=True):
        for case in (full, plain):
            early = _case_error(prop, pr, case.name)
            if early:
                return early
        got, xh = pr.arrays[f"{full.name}.out"], pr.arrays[f"{plain.name}.out"]
        if got.shape != full.x.shape or xh.shape != full.x.shape:
            return Verdict(prop, False, f"out has shape {got.shape}, expected {full.x.shape}")
        # Plain float64 arithmetic on the learner's own x_hat (no reference layer involved).
        c, G = full.x.shape[1], full.G
        view = (1, -1, 1, 1)
        gt, bt = np.asarray(full.gamma, np.float64), np.asarray(full.beta, np.float64)
        atol = _out_atol(full)
        want = np.asarray(xh, np.float64) * gt.reshape(view) + bt.reshape(view)
        if close(got, want, atol):
            continue
        detail = describe_difference(
            got, want, f"{what}: out vs gamma[c] * x_hat + beta[c] on the {full.name} input"
        )
        per_group = {}
        for label, idx in (
            ("gamma[:G]", np.arange(G)),
            ("gamma[::C//G]", np.arange(0, c, c // G)),
        ):
            rep = np.repeat(idx, c // G)
            per_group[label] = (gt[rep].reshape(view), bt[rep].reshape(view))
        found = None
        ref_plain = _norm_autograd(plain, "gn")["out"]
        for base in (xh, ref_plain):
            mistakes = {}
            for gg, bb in per_group.values():
                mistakes.setdefault(
                    "GN affine per group instead of per channel",
                    (
                        np.asarray(base, np.float64) * gg + bb,
                        "You applied one scale and shift per group. GroupNorm's gamma and "
                        "beta have one entry per channel, shape (C,): normalize per group, "
                        "reshape back to (N, C, H, W), then out = gamma.reshape(1, C, 1, 1) * "
                        "x_hat + beta.reshape(1, C, 1, 1).",
                    ),
                )
                found = found or diagnose(got, mistakes, atol)
                mistakes.clear()
            found = found or diagnose(
                got,
                {
                    "gamma and beta swapped": (
                        np.asarray(base, np.float64) * bt.reshape(view) + gt.reshape(view),
                        "gamma scales and beta shifts: out = gamma * x_hat + beta.",
                    ),
                    "gamma and beta ignored": (
                        np.asarray(base, np.float64),
                        "scale by gamma and shift by beta, per channel.",
                    ),
                },
                atol,
            )
        return _fail(prop, detail, found)
    return Verdict(
        prop,
        True,
        "out = gamma[c] * x_hat + beta[c], one scale and shift per channel (as nn.GroupNorm)",
    )


def _fold_outputs(case: FoldCase, W=None, b=None, original: bool = False) -> np.ndarray:
    """The case's batch through the real layers: the original layer followed by BatchNorm in
    eval mode (original=True), or a layer with the given (folded) weights alone."""
    return _fold_reference(case) if original else _folded_layer(case, W, b)


@cached
def _fold_reference(case: FoldCase) -> np.ndarray:
    """The original nn.Linear / nn.Conv2d followed by nn.BatchNorm1d/2d in eval mode."""
    torch = import_torch()
    x = _t(case.x)
    f64 = torch.float64
    with torch.no_grad():
        bias = case.b is not None
        if case.kind == "dense":
            d_out, d_in = case.W.shape
            layer = torch.nn.Linear(d_in, d_out, bias=bias, dtype=f64)
            bn = torch.nn.BatchNorm1d(d_out, eps=case.eps, dtype=f64)
        else:
            c_out, c_in, kh, kw = case.W.shape
            layer = torch.nn.Conv2d(
                c_in, c_out, (kh, kw), padding=case.padding, bias=bias, dtype=f64
            )
            bn = torch.nn.BatchNorm2d(c_out, eps=case.eps, dtype=f64)
        layer.weight.copy_(_t(case.W))
        if bias:
            layer.bias.copy_(_t(case.b))
        bn.weight.copy_(_t(case.gamma))
        bn.bias.copy_(_t(case.beta))
        bn.running_mean.copy_(_t(case.running_mean))
        bn.running_var.copy_(_t(case.running_var))
        bn.eval()
        return bn(layer(x)).numpy()


def _folded_layer(case: FoldCase, W, b) -> np.ndarray:
    """The case's batch through a plain nn.Linear / nn.Conv2d with weights W and bias b (the
    learner's folded ones, or a known mistake's). Its weights come from the answer, so no
    reference can be shipped for it: without torch the same layer is applied in NumPy (a
    matrix product or `conv2d`, in float64; not a batch norm, and not an answer)."""
    W, b = np.asarray(W, np.float64), np.reshape(np.asarray(b, np.float64), -1)
    try:
        torch = import_torch()
    except ImportError:
        x = np.asarray(case.x, np.float64)
        if case.kind == "dense":
            return x @ W.T + b
        return conv2d(x, W, b, padding=case.padding)
    x = _t(case.x)
    with torch.no_grad():
        if case.kind == "dense":
            return torch.nn.functional.linear(x, _t(W), _t(b)).numpy()
        return torch.nn.functional.conv2d(x, _t(W), _t(b), padding=case.padding).numpy()


@cached
def _fold_variants(case: FoldCase) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """Folded (W, b) of the known mistakes, computed with torch tensor operations."""
    torch = import_torch()
    W, gamma, beta = _t(case.W), _t(case.gamma), _t(case.beta)
    mean, var, eps = _t(case.running_mean), _t(case.running_var), case.eps
    b = torch.zeros_like(mean) if case.b is None else _t(case.b)
    out_view = (-1,) + (1,) * (W.ndim - 1)
    right = gamma / torch.sqrt(var + eps)

    def fold(scale, shift=None, w_scale=None):
        w_scale = scale.view(out_view) if w_scale is None else w_scale
        shift = (b - mean) * scale + beta if shift is None else shift
        return (W * w_scale).numpy(), shift.numpy()

    found = {}
    if case.b is not None:
        found["folding forgets the old bias"] = (
            *fold(right, shift=beta - mean * right),
            "the layer's own bias b passes through BN too: b_folded = (b - running_mean) * "
            "gamma / sqrt(running_var + eps) + beta.",
        )
    found["folding with eps outside the square root"] = (
        *fold(gamma / (torch.sqrt(var) + eps)),
        "BN divides by sqrt(running_var + eps), eps inside the square root.",
    )
    found["folding without eps"] = (
        *fold(gamma / torch.sqrt(var)),
        "eps is missing: BN in eval mode divides by sqrt(running_var + eps).",
    )
    found["folding with the variance instead of the standard deviation"] = (
        *fold(gamma / (var + eps)),
        "scale by gamma / sqrt(running_var + eps): running_var is a variance, take its square "
        "root.",
    )
    found["folding shift not scaled"] = (
        *fold(right, shift=b - mean + beta),
        "the shift is scaled too: b_folded = (b - running_mean) * gamma / sqrt(running_var + "
        "eps) + beta.",
    )
    if W.ndim == 4 and W.shape[0] == W.shape[1]:
        found["conv weights scaled per input channel"] = (
            *fold(right, w_scale=right.view(1, -1, 1, 1)),
            "BN normalizes the conv's OUTPUT channels: scale W along axis 0, "
            "W * scale.reshape(-1, 1, 1, 1) (one factor per output channel), not along axis 1.",
        )
    return found


@cached
def _fold_magnitude(case: FoldCase) -> float:
    """The largest |x| * |W| through the case's layer (a bound on its output's terms)."""
    torch = import_torch()
    with torch.no_grad():
        x = _t(case.x)
        Wa = _t(np.abs(case.W.astype(np.float64)))
        if case.kind == "dense":
            mag = torch.nn.functional.linear(x.abs(), Wa)
        else:
            mag = torch.nn.functional.conv2d(x.abs(), Wa, padding=case.padding)
    return float(mag.max())


def _fold_atol(case: FoldCase, want) -> float:
    scale = np.abs(case.gamma.astype(np.float64)) / np.sqrt(
        case.running_var.astype(np.float64) + case.eps
    )
    shift = np.abs(case.running_mean.astype(np.float64)) + (
        0 if case.b is None else np.abs(case.b.astype(np.float64))
    )
    bound = (
        _fold_magnitude(case) * scale.max()
        + float((shift * scale).max())
        + float(np.abs(case.beta).max())
    )
    return 64 * _u(case.W.dtype) * (bound + float(np.max(np.abs(want))) + 1.0)


def _judge_fold(prop, case_list, pr, what):
    label = "nn.Linear + nn.BatchNorm1d" if prop == "fold_dense" else "nn.Conv2d + nn.BatchNorm2d"
    for case in case_list:
        early = _case_error(prop, pr, case.name)
        if early:
            return early
        Wf, bf = pr.arrays[f"{case.name}.W"], pr.arrays[f"{case.name}.b"]
        bias = "None" if case.b is None else "given"
        where = f"the {case.name} case (W of shape {case.W.shape}, b {bias})"
        if Wf.shape != case.W.shape:
            return Verdict(
                prop,
                False,
                f"{what} on {where}: W_folded has shape {Wf.shape}, "
                f"expected {case.W.shape} (the shape of W)",
            )
        if bf.size != case.W.shape[0]:
            return Verdict(
                prop,
                False,
                f"{what} on {where}: b_folded has {bf.size} values, "
                f"expected {case.W.shape[0]} (one per output)",
            )
        want = _fold_outputs(case, original=True)
        got = _fold_outputs(case, np.asarray(Wf, np.float64), np.asarray(bf, np.float64))
        atol = _fold_atol(case, want)
        if close(got, want, atol, rtol=0.0):
            continue
        detail = describe_difference(
            got, want, f"the folded layer vs {label} (eval mode) on {where}"
        )
        found = None
        for name, (vw, vb, advice) in _fold_variants(case).items():
            if close(got, _fold_outputs(case, vw, vb), atol, rtol=0.0):
                found = (name, advice)
                break
        return _fail(prop, detail, found)
    return Verdict(
        prop,
        True,
        f"the folded layer equals {label} in eval mode on "
        f"{len(case_list)} cases (with and without bias"
        f"{', with padding' if prop == 'fold_conv' else ''})",
    )


@cached
def _renorm_reference(case: RenormCase, clip_r: str = "both", clip_d: bool = True):
    """Batch Renormalization, training mode (Ioffe 2017, Algorithm 1), in torch, float64.

    sigma_B = sqrt(var_B + eps) (biased batch variance), sigma = sqrt(running_var + eps);
    r = clip(sigma_B / sigma, 1/r_max, r_max), d = clip((mu_B - mu) / sigma, -d_max, d_max),
    both constants for the gradient; out = gamma * ((x - mu_B) / sigma_B * r + d) + beta.
    """
    torch = import_torch()
    x = _t(case.x)
    mu_b = x.mean(dim=0)
    sigma_b = torch.sqrt(x.var(dim=0, unbiased=False) + case.eps)
    sigma = torch.sqrt(_t(case.running_var) + case.eps)
    r = (sigma_b / sigma).detach()
    d = ((mu_b - _t(case.running_mean)) / sigma).detach()
    if clip_r == "both":
        r = r.clamp(1.0 / case.r_max, case.r_max)
    elif clip_r == "upper":
        r = r.clamp(max=case.r_max)
    if clip_d:
        d = d.clamp(-case.d_max, case.d_max)
    out = _t(case.gamma) * ((x - mu_b) / sigma_b * r + d) + _t(case.beta)
    return {"out": out.numpy(), "r": r.numpy(), "d": d.numpy()}


@cached
def _bn_limit(case: RenormCase) -> np.ndarray:
    """The limiting case by the real BN: training mode when r_max = 1 and d_max = 0, inference
    with the running statistics when nothing is clipped."""
    torch = import_torch()
    training = case.r_max == 1.0
    return torch.nn.functional.batch_norm(
        _t(case.x),
        _t(case.running_mean),
        _t(case.running_var),
        _t(case.gamma),
        _t(case.beta),
        training=training,
        momentum=0.0,
        eps=case.eps,
    ).numpy()


RENORM_MISTAKES = {
    "Batch Renorm with r and d not clipped": (
        ("none", False),
        "Neither r nor d is clipped: without the clips Batch Renorm is exactly the inference "
        "transform (x - running_mean) / sqrt(running_var + eps). Clip r to [1/r_max, r_max] "
        "and d to [-d_max, d_max] (np.clip).",
    ),
    "Batch Renorm with r not clipped": (
        ("none", True),
        "r is not clipped: r = np.clip(sigma_B / sigma, 1 / r_max, r_max).",
    ),
    "Batch Renorm with d not clipped": (
        ("both", False),
        "d is not clipped: d = np.clip((mu_B - running_mean) / sigma, -d_max, d_max).",
    ),
    "Batch Renorm with r clipped only from above": (
        ("upper", True),
        "r is clipped to [0, r_max] only: its lower bound is 1 / r_max, r = np.clip(sigma_B / "
        "sigma, 1 / r_max, r_max).",
    ),
}


def _renorm_atol(case: RenormCase) -> float:
    x = np.asarray(case.x, np.float64)
    cond = float(
        np.max(
            (np.abs(x.mean(0)) + x.std(0) + np.abs(case.running_mean))
            / np.sqrt(x.var(0) + case.eps)
        )
    )
    scale = (
        float(np.max(np.abs(case.gamma)))
        * (cond + 1)
        * max(1.0, case.d_max if case.d_max < 1e5 else 10.0)
    )
    return 128 * _u(case.x.dtype) * (scale + float(np.max(np.abs(case.beta))) + 1.0) + 1e-12


def _flat_close(got, want, atol):
    if got is None or np.size(got) != np.size(want):
        return False
    return close(np.reshape(got, np.shape(want)), want, atol)


def _judge_renorm(prop, case_list, pr, what):
    for case in case_list:
        early = _case_error(prop, pr, case.name)
        if early:
            return early
        atol = _renorm_atol(case)
        got = pr.arrays.get(f"{case.name}.out")
        where = (
            f"on the {case.name} input (r_max={case.r_max:g}, d_max={case.d_max:g}, "
            f"eps={case.eps:g})"
        )
        if prop == "renorm_limits":
            want = _bn_limit(case)
            label = (
                "F.batch_norm(training=True)"
                if case.r_max == 1.0
                else "F.batch_norm(training=False) with the running statistics"
            )
        else:
            want = _renorm_reference(case)["out"]
            label = "Batch Renorm (Ioffe 2017, Algorithm 1)"
        if close(got, want, atol):
            if prop == "renorm_clip":
                ref = _renorm_reference(case)
                for name in ("r", "d"):
                    g = pr.arrays.get(f"{case.name}.{name}")
                    if not _flat_close(g, ref[name], atol):
                        return Verdict(
                            prop,
                            False,
                            describe_difference(
                                None
                                if g is None or g.size != ref[name].size
                                else np.reshape(g, ref[name].shape),
                                ref[name],
                                f"{what}: {name} {where}",
                            )
                            + f". Return {name} per feature, shape ({case.x.shape[1]},).",
                        )
            continue
        detail = describe_difference(got, want, f"{what} vs {label} {where}")
        found = None
        for name, ((clip_r, clip_d), advice) in RENORM_MISTAKES.items():
            if prop == "renorm_limits" and case.r_max > 1e5:
                break  # unclipped: every clip mistake gives the right answer here
            if close(got, _renorm_reference(case, clip_r, clip_d)["out"], atol):
                found = (name, advice)
                break
        hint = "" if found else _affine_hint(got, want)
        return _fail(prop, detail, found, hint)
    if prop == "renorm_limits":
        return Verdict(
            prop,
            True,
            "r_max=1, d_max=0 gives BN in training mode and unclipped it "
            "gives the inference transform with the running statistics",
        )
    return Verdict(
        prop,
        True,
        f"out, r and d follow Ioffe (2017) on {len(case_list)} inputs with both clips active",
    )


@cached
def _renorm_autograd(case: RenormCase, kind: str = "right") -> dict[str, np.ndarray]:
    """Gradients of Batch Renorm's training graph, or of a known mistake, by torch.autograd in
    float64: out = gamma * ((x - mu_B) / sigma_B * r + d) + beta, backward of sum(out * dout).

    "right": r and d are the case's values, constants (stop_gradient, Ioffe 2017).
    "r-graph", "d-graph", "rd-graph": r, d or both differentiated as functions of x. The
    backward is given r and d but neither the running statistics nor the clips, so a backward
    that differentiates them can only take r = sigma_B / sigma and d = (mu_B - running_mean) /
    sigma with the statistics that r and d imply, sigma = sigma_B / r and running_mean =
    mu_B - d * sigma, held constant: the real running statistics wherever r and d are not
    clipped (there the graph is the paper's without stop_gradient). r and d keep their values.
    "no-r": r left out (r = 1), d kept: BN's gradient.
    """
    torch = import_torch()
    x = _t(case.x).requires_grad_(True)
    g = _t(case.gamma).requires_grad_(True)
    b = _t(case.beta).requires_grad_(True)
    r, d = _t(case.r), _t(case.d)
    mu_b = x.mean(dim=0)
    sigma_b = torch.sqrt(x.var(dim=0, unbiased=False) + case.eps)
    sigma = (sigma_b / r).detach()
    running_mean = (mu_b - d * sigma).detach()
    if kind in ("r-graph", "rd-graph"):
        r = sigma_b / sigma
    if kind in ("d-graph", "rd-graph"):
        d = (mu_b - running_mean) / sigma
    if kind == "no-r":
        r = torch.ones_like(r)
    elif kind not in ("right", "r-graph", "d-graph", "rd-graph"):
        raise KeyError(kind)
    out = g * ((x - mu_b) / sigma_b * r + d) + b
    (out * _t(case.dout)).sum().backward()
    return {"dx": x.grad.numpy(), "dgamma": g.grad.numpy(), "dbeta": b.grad.numpy()}


_RENORM_DX = (
    "dx = gamma * r / sigma_B * (dout - mean(dout, 0) - x_hat * mean(dout * x_hat, 0)), with "
    "x_hat = (x - mu_B) / sigma_B."
)

RENORM_GRAD_MISTAKES = {
    "Batch Renorm with r and d not detached": (
        "rd-graph",
        "You differentiated through r and d: as functions of x, r = sigma_B / sigma and d = "
        "(mu_B - running_mean) / sigma make x_hat * r + d = (x - running_mean) / sigma, so your "
        "dx = gamma * dout / sigma is the gradient of the inference transform and the batch "
        "statistics drop out of it. Batch Renorm holds r and d constant (stop_gradient): "
        + _RENORM_DX,
    ),
    "Batch Renorm with r not detached": (
        "r-graph",
        "You differentiated through r: with r = sigma_B / sigma a function of x, x_hat * r = "
        "(x - mu_B) / sigma, the division by sigma_B cancels and dx loses the path through the "
        "batch variance (the x_hat * mean(dout * x_hat, 0) term). r is a constant in Batch "
        "Renorm's backward (stop_gradient): " + _RENORM_DX,
    ),
    "Batch Renorm with d not detached": (
        "d-graph",
        "You differentiated through d: d = (mu_B - running_mean) / sigma moves with the batch "
        "mean, and its gradient cancels the path through mu_B (the - mean(dout, 0) term of "
        "dx). d is a constant in Batch Renorm's backward (stop_gradient): " + _RENORM_DX,
    ),
    "Batch Renorm gradient without r": (
        "no-r",
        "Your gradient is BN's: r multiplies x_hat in the forward, so it scales the gradient "
        "too. " + _RENORM_DX + " And dgamma = sum(dout * (x_hat * r + d), 0).",
    ),
}


def _renorm_grad_atol(case: RenormCase, want) -> float:
    """As _grad_atol: the condition of the batch's normalization (|mean| + std over sigma_B,
    per feature), the batch size and the size of the gradient (r scales dx and d enters
    dgamma, both through `want`)."""
    x = np.asarray(case.x, np.float64)
    cond = float(np.max((np.abs(x.mean(0)) + x.std(0) + 1e-12) / np.sqrt(x.var(0) + case.eps)))
    scale = float(np.max(np.abs(want))) + 1.0
    return 256 * _u(case.x.dtype) * np.sqrt(x.shape[0]) * (cond + 1) * scale


def _judge_renorm_backward(prop, case_list, pr, what):
    for case in case_list:
        early = _case_error(prop, pr, case.name)
        if early:
            return early
        ref = _renorm_autograd(case)
        where = f"on the {case.name} input of shape {case.x.shape} (eps={case.eps:g})"
        for grad in ("dx", "dgamma", "dbeta"):
            got, want = pr.arrays.get(f"{case.name}.{grad}"), ref[grad]
            if grad != "dx" and got is not None and got.size == want.size:
                got = np.reshape(got, want.shape)  # (1, D) taken as (D,), as for r and d
            atol = _renorm_grad_atol(case, want)
            if close(got, want, atol, rtol=0.0):
                continue
            detail = describe_difference(
                got, want, f"{what}: {grad} vs torch.autograd with r and d constant {where}"
            )
            if (
                grad != "dx"
                and got is not None
                and got.ndim > 1
                and got.shape != want.shape
                and _sums_to(got, want, (0,))
            ):
                return Verdict(
                    prop,
                    False,
                    f"{detail}. Diagnosis: {grad} not summed over the batch. gamma and beta "
                    "are shared by every sample: sum over axis 0.",
                    f"{grad} not summed over the batch",
                )
            variants = {
                name: (_renorm_autograd(case, kind)[grad], advice)
                for name, (kind, advice) in RENORM_GRAD_MISTAKES.items()
            }
            return _fail(prop, detail, diagnose(got, variants, atol))
    return Verdict(
        prop,
        True,
        "dx, dgamma, dbeta match torch.autograd of Batch Renorm with r and d constant on "
        f"{len(case_list)} inputs",
    )


def judge(prop: str, case_list: list, pr: Probe, what: str = ""):
    early = framework_verdict(prop, pr, what)
    if early:
        return early
    try:
        if prop in ("ln_forward", "ln_backward", "gn_forward", "gn_backward"):
            return _judge_norm(prop, case_list, pr, what)
        if prop == "gn_affine":
            return _judge_gn_affine(prop, case_list, pr, what)
        if prop in ("fold_dense", "fold_conv"):
            return _judge_fold(prop, case_list, pr, what)
        if prop in ("renorm_limits", "renorm_clip"):
            return _judge_renorm(prop, case_list, pr, what)
        if prop == "renorm_backward":
            return _judge_renorm_backward(prop, case_list, pr, what)
    except KeyError as err:  # an array the probe could not record
        return Verdict(prop, False, f"{what}: no result for {quote_learner(err)}")
    raise KeyError(prop)
