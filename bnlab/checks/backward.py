"""Checks of `batchnorm_backward`, `batchnorm_backward_fast` and `spatial_batchnorm_backward`.

The learner's own forward pass produces the cache; the references are torch.autograd gradients
of ``torch.nn.functional.batch_norm``. Known mistakes are autograd gradients of deliberately
wrong graphs (statistics detached, i.e. treated as constants), or simple re-arrangements of the
reference (dgamma not summed over the batch, dgamma and dbeta swapped).
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
    dx_property_hint,
    error_verdict,
    framework_verdict,
    snapshot,
)
from bnlab.core.frameworks import import_torch
from bnlab.core.refcache import cached


@dataclass
class Case:
    name: str
    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    dout: np.ndarray
    eps: float


def make_case(name, shape, seed, mean=0.0, scale=1.0, dtype=np.float64, eps=1e-5):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (mean + scale * rng.standard_normal(shape)).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, size=c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    return Case(name, x, gamma, beta, dout, eps)


def cases(prop: str, seed: int) -> list[Case]:
    s = 5000 + seed * 1000
    if prop == "spatial":
        return [
            make_case("spatial", (4, 3, 5, 5), s + 1, mean=1.0, scale=2.0),
            make_case("spatial-n2", (2, 4, 3, 3), s + 2, scale=0.5),
        ]
    return [
        make_case("float64", (8, 3), s + 3, mean=seed % 4, scale=1 + seed % 3),
        make_case("small-batch", (2, 1), s + 4),
        make_case("wide", (32, 10), s + 5, mean=-2.0, scale=0.3, eps=1e-3),
        make_case("float32", (16, 4), s + 6, mean=1.0, dtype=np.float32),
    ]


def probe(forward_fn, backward_fn, case_list: list[Case]) -> Probe:
    """Forward with the learner's forward, then the learner's backward: keep dx, dgamma, dbeta."""
    result = Probe()
    for case in case_list:
        ret = call_learner(
            result,
            f"forward on {case.name}",
            forward_fn,
            case.x.copy(),
            case.gamma.copy(),
            case.beta.copy(),
            eps=case.eps,
        )
        if not (isinstance(ret, tuple) and len(ret) == 2):
            result.errors.setdefault(case.name, "the forward pass did not return (out, cache)")
            continue
        grads = call_learner(
            result, f"backward on {case.name}", backward_fn, case.dout.copy(), ret[1]
        )
        if grads is None and result.errors:
            continue
        if not (isinstance(grads, tuple) and len(grads) == 3):
            result.errors[case.name] = "the backward pass must return (dx, dgamma, dbeta)"
            continue
        for name, value in zip(("dx", "dgamma", "dbeta"), grads, strict=True):
            arr = snapshot(value)
            if arr is not None:
                result.arrays[f"{case.name}.{name}"] = arr
    return result


@cached
def _autograd(case: Case, detach: str = "") -> dict[str, np.ndarray]:
    """Gradients of BN by torch.autograd; `detach` names statistics treated as constants."""
    torch = import_torch()
    x = torch.tensor(np.asarray(case.x, np.float64), requires_grad=True)
    g = torch.tensor(np.asarray(case.gamma, np.float64), requires_grad=True)
    b = torch.tensor(np.asarray(case.beta, np.float64), requires_grad=True)
    dims = (0,) if x.ndim == 2 else (0, 2, 3)
    view = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
    if not detach:
        out = torch.nn.functional.batch_norm(x, None, None, g, b, training=True, eps=case.eps)
    else:
        mu = x.mean(dim=dims, keepdim=True)
        if "mean" in detach:
            mu = mu.detach()
        var = ((x - mu) ** 2).mean(dim=dims, keepdim=True)
        if "var" in detach:
            var = var.detach()
        out = (x - mu) / torch.sqrt(var + case.eps) * g.view(view) + b.view(view)
    out.backward(torch.from_numpy(np.asarray(case.dout, np.float64)))
    return {"dx": x.grad.numpy(), "dgamma": g.grad.numpy(), "dbeta": b.grad.numpy()}


def _atol(case: Case, want: np.ndarray) -> float:
    """Gradients lose about u * sqrt(m) * (|mean| + std) / std relative to their size."""
    u = np.finfo(case.x.dtype).eps
    x = np.asarray(case.x, np.float64)
    dims = (0,) if x.ndim == 2 else (0, 2, 3)
    m = x.size / x.shape[1]
    cond = float(
        np.max(
            (np.abs(x.mean(axis=dims)) + x.std(axis=dims) + 1e-12)
            / np.sqrt(x.var(axis=dims) + case.eps)
        )
    )
    return 256 * u * np.sqrt(m) * (cond + 1) * (float(np.max(np.abs(want))) + 1.0)


@cached
def variants(case: Case, grad: str) -> dict[str, tuple[np.ndarray, str]]:
    ref = _autograd(case)
    found = {}
    const = {
        "mean and variance treated as constants": (
            "mean,var",
            "the gradient flows through "
            "the batch mean and variance too: both depend on every x. Add the paths through "
            "dvar and dmu (chain rule over the staged graph).",
        ),
        "mean treated as a constant": (
            "mean",
            "the gradient through the batch mean is "
            "missing: dmu collects -1/sqrt(var + eps) * sum(dx_hat), and dx gets dmu / N.",
        ),
        "variance treated as a constant": (
            "var",
            "the gradient through the batch variance is "
            "missing: dvar = sum(dx_hat * (x - mu)) * -0.5 * (var + eps)**-1.5, and dx gets "
            "dvar * 2 * (x - mu) / N.",
        ),
    }
    if grad == "dx":
        for name, (detach, advice) in const.items():
            found[name] = (_autograd(case, detach)["dx"], f"Your dx ignores that {advice}")
    other = {"dgamma": "dbeta", "dbeta": "dgamma"}.get(grad)
    if other:
        found[f"{grad} and {other} swapped"] = (
            ref[other],
            f"{grad} and {other} are swapped: dbeta = sum(dout), dgamma = sum(dout * x_hat).",
        )
    if grad == "dgamma":
        x = np.asarray(case.x, np.float64)
        dims = (0,) if x.ndim == 2 else (0, 2, 3)
        found["dgamma uses x instead of x_hat"] = (
            (np.asarray(case.dout, np.float64) * x).sum(axis=dims),
            "dgamma must use the normalized input: sum(dout * x_hat), not sum(dout * x).",
        )
    return found


def _not_summed(got, want, dims) -> bool:
    if got is None or got.shape == want.shape or got.ndim <= 1:
        return False
    try:
        return bool(
            np.allclose(np.asarray(got, np.float64).sum(axis=dims), want, rtol=1e-5, atol=1e-8)
        )
    except ValueError:
        return False


def judge(prop: str, case_list: list[Case], pr: Probe, what: str = "batchnorm_backward"):
    early = framework_verdict(prop, pr, what) or error_verdict(prop, pr)
    if early:
        return early
    grads = ("dx", "dgamma", "dbeta") if prop in ("fast", "spatial") else (prop,)
    for case in case_list:
        ref = _autograd(case)
        dims = (0,) if case.x.ndim == 2 else (0, 2, 3)
        for grad in grads:
            got = pr.arrays.get(f"{case.name}.{grad}")
            want = ref[grad]
            atol = _atol(case, want)
            if close(got, want, atol, rtol=0.0):
                continue
            label = f"{what}: {grad} on the {case.name} input of shape {case.x.shape}"
            detail = describe_difference(got, want, label)
            if grad != "dx" and _not_summed(got, want, dims):
                return Verdict(
                    prop,
                    False,
                    f"{detail}. Diagnosis: {grad} not summed over the "
                    f"batch. gamma and beta are shared by all samples, so {grad} "
                    f"sums over axis {dims if len(dims) > 1 else 0}.",
                    f"{grad} not summed over the batch",
                )
            found = diagnose(got, variants(case, grad), atol) if got is not None else None
            if found:
                return Verdict(
                    prop, False, f"{detail}. Diagnosis: {found[0]}. {found[1]}", found[0]
                )
            hint = dx_property_hint(got, want, case.x, case.eps) if grad == "dx" else ""
            return Verdict(prop, False, detail + "." + hint)
    names = ", ".join(grads)
    return Verdict(prop, True, f"{names} match torch.autograd on {len(case_list)} inputs")
