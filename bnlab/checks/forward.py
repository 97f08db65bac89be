"""Checks of `batchnorm_forward` (x of shape (N, D)) and `spatial_batchnorm_forward` (N, C, H, W).

References are computed by torch and Keras layers; the known mistakes are expressed through the
same framework functions (e.g. a per-sample normalization is ``torch.nn.functional.layer_norm``),
so that nothing here is a NumPy answer to the exercise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnlab.checks import references
from bnlab.checks.harness import (
    Probe,
    Verdict,
    call_learner,
    close,
    describe_difference,
    diagnose,
    error_verdict,
    forward_atol,
    framework_verdict,
    output_property_hint,
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
    eps: float


def make_case(name, shape, seed, mean=0.0, scale=1.0, dtype=np.float64, eps=1e-5, affine=True):
    rng = np.random.default_rng(seed)
    channels = shape[1]
    mean = np.asarray(mean, dtype=np.float64)
    x = mean + scale * rng.standard_normal(shape)
    if affine:
        gamma = rng.uniform(0.5, 2.0, size=channels)
        beta = rng.standard_normal(channels)
    else:
        gamma, beta = np.ones(channels), np.zeros(channels)
    return Case(name, x.astype(dtype), gamma.astype(dtype), beta.astype(dtype), eps)


# ----------------------------------------------------------------------------- cases
def cases(prop: str, seed: int) -> list[Case]:
    s = seed * 1000
    if prop == "shape":
        return [
            make_case(f"x{n}x{d}", (n, d), s + i)
            for i, (n, d) in enumerate([(4, 3), (2, 1), (16, 7)])
        ]
    if prop == "normalizes":
        return [
            make_case("normalize", (32, 5), s + 1, mean=3.0, scale=4.0, eps=1e-12, affine=False)
        ]
    if prop == "affine":
        full = make_case("affine", (16, 4), s + 2)
        plain = Case(
            "affine-plain", full.x, np.ones_like(full.gamma), np.zeros_like(full.beta), full.eps
        )
        return [full, plain]
    if prop in ("torch", "keras"):
        eps = 1e-5 if prop == "torch" else 1e-3
        return [
            make_case("small-batch", (2, 1), s + 3, eps=eps),
            make_case("float64", (8, 3), s + 4, mean=seed % 3, scale=1 + seed % 5, eps=eps),
            make_case("wide", (64, 16), s + 5, mean=-1.5, scale=0.2, eps=eps),
            make_case("float32", (20, 6), s + 6, mean=2.0, dtype=np.float32, eps=eps),
        ]
    if prop == "eps":
        out = []
        for i, eps in enumerate((1e-5, 0.5, 4.0)):
            case = make_case(f"eps={eps:g}", (6, 3), s + 7 + i, eps=eps)
            case.x[:, 1] = 7.0  # a constant feature: variance 0, only eps keeps it finite
            out.append(case)
        return out
    if prop == "large_mean":
        return [
            make_case("moderate-mean", (50, 3), s + 10, mean=[5.0, -20.0, 100.0]),
            make_case("mean-1e8-float64", (50, 3), s + 11, mean=1e8),
            make_case("mean-1e4-float32", (50, 3), s + 12, mean=1e4, dtype=np.float32),
        ]
    if prop == "spatial":
        return [
            make_case("spatial", (4, 3, 5, 5), s + 13, mean=2.0, scale=3.0),
            make_case("spatial-n2", (2, 5, 3, 4), s + 14, mean=-1.0, scale=0.5),
            make_case("spatial-float32", (3, 2, 4, 4), s + 15, dtype=np.float32, eps=1e-3),
        ]
    raise KeyError(prop)


# ----------------------------------------------------------------------------- probe
def probe(fn, case_list: list[Case]) -> Probe:
    """Run the learner's forward function on every case; keep only arrays and messages."""
    result = Probe()
    for case in case_list:
        ret = call_learner(
            result, case.name, fn, case.x.copy(), case.gamma.copy(), case.beta.copy(), eps=case.eps
        )
        if ret is None and case.name in result.errors:
            continue
        if not (isinstance(ret, tuple) and len(ret) == 2):
            result.errors[case.name] = (
                f"returned {type(ret).__name__}, not a pair (out, cache); "
                "end the function with `return out, cache`"
            )
            continue
        out = snapshot(ret[0])
        if out is None:
            result.errors[case.name] = "out is not an array"
            continue
        result.arrays[f"{case.name}.out"] = out
        result.arrays[f"{case.name}.dtype"] = np.asarray(str(out.dtype))
    return result


# ----------------------------------------------------------------------------- references
def _t(a):
    torch = import_torch()
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def _expand(v, ndim):
    return v if ndim == 2 else v.reshape(1, -1, 1, 1)


@cached
def variants(case: Case) -> dict[str, tuple[np.ndarray, str]]:
    """Outputs of the well-known mistakes on this case, built from framework functions."""
    torch = import_torch()
    F = torch.nn.functional
    x = _t(case.x)
    nd = x.ndim
    dims = (0,) if nd == 2 else (0, 2, 3)
    g, b = _expand(_t(case.gamma), nd), _expand(_t(case.beta), nd)
    xh = F.batch_norm(x, None, None, training=True, eps=case.eps)  # normalized, no affine
    vb = _expand(x.var(dim=dims, unbiased=False), nd)
    n = x.numel() // x.shape[1]
    vu = _expand(x.var(dim=dims, unbiased=True), nd) if n > 1 else vb * np.nan
    eps = case.eps
    with np.errstate(all="ignore"):
        found = {
            "unbiased variance": (
                xh * torch.sqrt((vb + eps) / (vu + eps)) * g + b,
                "You normalized with the unbiased variance (dividing by N-1). BN normalizes with "
                "the biased batch variance, dividing by N (np.var's default, ddof=0).",
            ),
            "eps outside the square root": (
                xh * torch.sqrt(vb + eps) / (torch.sqrt(vb) + eps) * g + b,
                "eps is added outside the square root. Divide by sqrt(var + eps), not "
                "sqrt(var) + eps.",
            ),
            "eps missing": (
                xh * torch.sqrt(vb + eps) / torch.sqrt(vb) * g + b,
                "eps is missing: divide by sqrt(var + eps). It matters for features whose "
                "variance is small or zero.",
            ),
            "gamma and beta ignored": (
                xh,
                "The output is x_hat itself: scale by gamma and shift by beta, out = gamma * "
                "x_hat + beta.",
            ),
            "gamma and beta swapped": (
                xh * b + g,
                "gamma and beta are swapped: out = gamma * x_hat + beta (gamma scales, beta "
                "shifts).",
            ),
        }
        if nd == 2:
            found["statistics over the wrong axis"] = (
                F.layer_norm(x, (x.shape[1],), eps=eps) * g + b,
                "The statistics were taken over the features of each sample (axis 1). BN "
                "averages each feature over the batch: axis 0.",
            )
        else:
            c = x.shape[1]
            per_location = F.batch_norm(
                x.reshape(x.shape[0], -1), None, None, training=True, eps=eps
            ).reshape(x.shape)
            found["spatial statistics over the wrong axes"] = (
                F.instance_norm(x, eps=eps) * g + b,
                "You normalized each sample's feature maps on their own (axes 2, 3: instance "
                "norm). Spatial BN takes one mean and variance per channel over axes (0, 2, 3).",
            )
            found["spatial statistics per location"] = (
                per_location * g + b,
                "You took statistics over axis 0 only, one per (channel, row, column). Spatial "
                "BN shares them over the batch and both spatial axes: axes (0, 2, 3), one per "
                f"channel ({c} in all).",
            )
            found["spatial statistics over channels per location"] = (
                F.layer_norm(x.permute(0, 2, 3, 1), (c,), eps=eps).permute(0, 3, 1, 2) * g + b,
                "You normalized over the channels at each position (n, h, w). Spatial BN "
                "reduces each channel over (N, H, W); if you reuse batchnorm_forward on the "
                "(N*H*W, C) matrix, check that it averages over axis 0.",
            )
            found["spatial reshape without moving the channel axis"] = (
                F.batch_norm(
                    x.reshape(-1, c), None, None, _t(case.gamma), _t(case.beta), True, 0.0, eps
                ).reshape(x.shape),
                "You reshaped (N, C, H, W) straight to (-1, C): in memory the channel axis is "
                "not last, so each column of that matrix mixes channels and positions. Move the "
                "channel axis last first (x.transpose(0, 2, 3, 1).reshape(-1, C)), and undo both "
                "steps on the way back.",
            )
            found["spatial statistics over channels"] = (
                F.layer_norm(x, x.shape[1:], eps=eps) * g + b,
                "You normalized over (C, H, W) per sample (layer norm). Spatial BN reduces over "
                "(N, H, W) per channel.",
            )
    return {k: (v.numpy(), advice) for k, (v, advice) in found.items()}


@cached
def reference(case: Case) -> np.ndarray:
    return references.torch_batchnorm_train(case.x, case.gamma, case.beta, case.eps)


# ----------------------------------------------------------------------------- judges
def _first_failure(prop, case_list, pr, want_fn, label_fn):
    for case in case_list:
        got = pr.arrays.get(f"{case.name}.out")
        want = want_fn(case)
        atol = forward_atol(case.x, case.gamma, case.beta, case.eps)
        if close(got, want, atol):
            continue
        found = diagnose(got, variants(case), atol) if got is not None else None
        detail = describe_difference(got, want, label_fn(case))
        x64 = np.asarray(case.x, np.float64)
        constant = np.any(x64.std(axis=0 if x64.ndim == 2 else (0, 2, 3)) == 0)
        if (
            found is None
            and got is not None
            and np.shape(got) == np.shape(want)
            and constant
            and not np.all(np.isfinite(got))
        ):
            found = (
                "eps missing",
                "A feature that is constant over the batch has variance 0: "
                "without eps inside the square root, 0 / 0 gives NaN. Divide by "
                "sqrt(var + eps).",
            )
        if found:
            return Verdict(prop, False, f"{detail}. Diagnosis: {found[0]}. {found[1]}", found[0])
        return Verdict(prop, False, detail + "." + output_property_hint(got, want))
    return None


def judge(prop: str, case_list: list[Case], pr: Probe, what: str = "batchnorm_forward"):
    early = framework_verdict(prop, pr, what) or error_verdict(prop, pr)
    if early:
        return early
    if prop == "shape":
        for case in case_list:
            out = pr.arrays[f"{case.name}.out"]
            if out.shape != case.x.shape:
                return Verdict(
                    prop,
                    False,
                    f"out has shape {out.shape}, expected {case.x.shape} "
                    "(the shape of x). Reduce over axis 0 and broadcast back.",
                )
        return Verdict(prop, True, f"{what} returns (out, cache) with out.shape == x.shape")
    if prop == "normalizes":
        case = case_list[0]
        out = pr.arrays[f"{case.name}.out"].astype(np.float64)
        if out.shape != case.x.shape or not np.all(np.isfinite(out)):
            return _first_failure(prop, case_list, pr, reference, lambda c: "out")
        mean, var = out.mean(axis=0), out.var(axis=0)
        if np.allclose(mean, 0.0, atol=1e-7) and np.allclose(var, 1.0, atol=1e-6):
            return Verdict(prop, True, "with gamma=1, beta=0 each feature has mean 0, variance 1")
        found = _first_failure(prop, case_list, pr, reference, lambda c: "out")
        head = (
            f"per-feature means of out are {np.round(mean, 4)} and variances "
            f"{np.round(var, 4)}; expected 0 and 1"
        )
        if found and found.diagnosis:
            return Verdict(prop, False, f"{head}. {found.message}", found.diagnosis)
        return Verdict(
            prop,
            False,
            head + ". Subtract each feature's batch mean (axis 0) and "
            "divide by the square root of its batch variance plus eps.",
        )
    if prop == "affine":
        # Judged against the learner's own x_hat (gamma=1, beta=0 on the same x), so that this
        # property stands apart from the normalization's.
        full, plain = case_list
        got, xh = pr.arrays[f"{full.name}.out"], pr.arrays[f"{plain.name}.out"]
        if got.shape != full.x.shape or xh.shape != full.x.shape:
            return Verdict(prop, False, f"out has shape {got.shape}, expected {full.x.shape}")
        xh = xh.astype(np.float64)
        g, b = full.gamma.astype(np.float64), full.beta.astype(np.float64)
        atol = forward_atol(full.x, full.gamma, full.beta, full.eps)
        if close(got, g * xh + b, atol):
            return Verdict(prop, True, "out = gamma * x_hat + beta, per feature")
        detail = describe_difference(got, g * xh + b, "out versus gamma * x_hat + beta")
        ignored = "The output is x_hat itself: out = gamma * x_hat + beta."
        swapped = "gamma scales and beta shifts: out = gamma * x_hat + beta."
        found = None
        for base in (xh, reference(plain)):  # the learner's own x_hat may be broken too
            mistakes = {
                "gamma and beta ignored": (base, ignored),
                "gamma and beta swapped": (b * base + g, swapped),
            }
            found = found or diagnose(got, mistakes, atol)
        if found:
            return Verdict(prop, False, f"{detail}. Diagnosis: {found[0]}. {found[1]}", found[0])
        return Verdict(prop, False, detail)
    if prop in ("torch", "keras", "spatial"):
        if prop == "keras":

            def want(c):
                return references.keras_batchnorm_train(c.x, c.gamma, c.beta, c.eps)

            label = "keras.layers.BatchNormalization(epsilon={eps:g})"
        elif prop == "spatial":
            want = reference
            label = "torch.nn.BatchNorm2d(eps={eps:g})"
        else:
            want = reference
            label = "torch.nn.functional.batch_norm(eps={eps:g})"
        failure = _first_failure(
            prop,
            case_list,
            pr,
            want,
            lambda c: f"{label.format(eps=c.eps)} on {c.name} input of shape {c.x.shape}",
        )
        if failure:
            return failure
        if prop == "torch":
            case = case_list[1]
            module = references.torch_batchnorm1d_train(case.x, case.gamma, case.beta, case.eps)
            if not close(
                pr.arrays[f"{case.name}.out"],
                module,
                forward_atol(case.x, case.gamma, case.beta, case.eps),
            ):
                return Verdict(prop, False, "differs from torch.nn.BatchNorm1d in train mode")
        names = {
            "torch": "torch.nn.functional.batch_norm and torch.nn.BatchNorm1d",
            "keras": "keras.layers.BatchNormalization (training=True)",
            "spatial": "torch.nn.BatchNorm2d, one mean and variance per channel",
        }
        return Verdict(
            prop,
            True,
            f"matches {names[prop]} on {len(case_list)} inputs (float64 and float32)"
            if prop != "spatial"
            else f"matches {names[prop]}",
        )
    if prop == "eps":
        failure = _first_failure(prop, case_list, pr, reference, lambda c: f"with {c.name}")
        return failure or Verdict(
            prop, True, "eps sits inside the square root; a constant feature gives beta"
        )
    if prop == "large_mean":
        failure = _first_failure(prop, case_list, pr, reference, lambda c: f"{c.name} input")
        if failure is None:
            return Verdict(prop, True, "accurate at large means (1e8 in float64, 1e4 in float32)")
        moderate_ok = close(
            pr.arrays.get(f"{case_list[0].name}.out"),
            reference(case_list[0]),
            forward_atol(case_list[0].x, case_list[0].gamma, case_list[0].beta, case_list[0].eps),
        )
        if moderate_ok and failure.diagnosis is None:
            return Verdict(
                prop,
                False,
                f"{failure.message}. Diagnosis: one-pass variance cancellation. Your answer is "
                "right at moderate means but not when |mean| >> std: the one-pass formula "
                "E[x^2] - E[x]^2 subtracts two huge, nearly equal numbers. Subtract the mean "
                "first, then average the squares (two passes).",
                "one-pass variance cancellation",
            )
        return failure
    raise KeyError(prop)
