"""Checks of the NumPy `BatchNorm1d` class (PyTorch semantics): running statistics, modes.

The learner's layer and ``torch.nn.BatchNorm1d`` go through the same script: construction,
three training steps, eval mode, back to training and a backward pass. Known mistakes are the
same script on torch with the convention changed (Keras momentum), or running statistics
replayed with the wrong variance.
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
    dx_property_hint,
    error_verdict,
    framework_verdict,
    output_property_hint,
    snapshot,
)
from bnlab.core.frameworks import import_torch
from bnlab.core.refcache import cached

STEPS = 3


@dataclass
class Case:
    name: str
    momentum: float
    eps: float
    batches: list  # STEPS training batches
    x_eval: np.ndarray
    dout: np.ndarray


def cases(prop: str, seed: int) -> list[Case]:
    out = []
    for i, (momentum, eps, n, d) in enumerate([(0.1, 1e-5, 16, 4), (0.3, 1e-3, 5, 3)]):
        rng = np.random.default_rng(9000 + 1000 * seed + i)
        shift = rng.normal(0, 3, size=d)
        batches = [shift + rng.uniform(0.5, 3) * rng.standard_normal((n, d)) for _ in range(STEPS)]
        out.append(
            Case(
                f"momentum={momentum}",
                momentum,
                eps,
                batches,
                shift + rng.standard_normal((7, d)),
                rng.standard_normal((n, d)),
            )
        )
    return out


def _attr(probe, layer, key, name):
    value = call_learner(probe, f"{key}.{name}", getattr, layer, name)
    return snapshot(value, np.float64) if value is not None else None


def probe(cls, case_list: list[Case]) -> Probe:
    """Drive the learner's class through the script; record every state as an array."""
    pr = Probe()
    for case in case_list:
        key = case.name
        d = case.batches[0].shape[1]
        layer = call_learner(
            pr,
            f"{key}: BatchNorm1d({d}, eps, momentum)",
            cls,
            d,
            eps=case.eps,
            momentum=case.momentum,
        )
        if layer is None:
            continue
        record = pr.arrays
        for name in ("gamma", "beta", "running_mean", "running_var"):
            arr = _attr(pr, layer, key, name)
            if arr is not None:
                record[f"{key}.init.{name}"] = arr
        record[f"{key}.init.training"] = np.asarray(bool(getattr(layer, "training", False)))
        for step, batch in enumerate(case.batches):
            out = call_learner(pr, f"{key}: forward in training", layer.forward, batch.copy())
            if out is not None and snapshot(out) is not None:
                record[f"{key}.train{step}.out"] = snapshot(out, np.float64)
            for name in ("running_mean", "running_var"):
                arr = _attr(pr, layer, key, name)
                if arr is not None:
                    record[f"{key}.train{step}.{name}"] = arr
        call_learner(pr, f"{key}: eval()", layer.eval)
        record[f"{key}.eval.training"] = np.asarray(bool(getattr(layer, "training", True)))
        out = call_learner(pr, f"{key}: forward in eval mode", layer.forward, case.x_eval.copy())
        if out is not None and snapshot(out) is not None:
            record[f"{key}.eval.out"] = snapshot(out, np.float64)
        for name in ("running_mean", "running_var"):
            arr = _attr(pr, layer, key, name)
            if arr is not None:
                record[f"{key}.eval.{name}"] = arr
        call_learner(pr, f"{key}: train()", layer.train)
        record[f"{key}.train.training"] = np.asarray(bool(getattr(layer, "training", False)))
        call_learner(pr, f"{key}: forward before backward", layer.forward, case.batches[0].copy())
        dx = call_learner(pr, f"{key}: backward", layer.backward, case.dout.copy())
        if dx is not None and snapshot(dx) is not None:
            record[f"{key}.dx"] = snapshot(dx, np.float64)
        for name in ("dgamma", "dbeta"):
            arr = _attr(pr, layer, key, name)
            if arr is not None:
                record[f"{key}.{name}"] = arr
    return pr


@cached
def reference(case: Case, momentum: float | None = None) -> dict[str, np.ndarray]:
    """The same script on torch.nn.BatchNorm1d (float64)."""
    torch = import_torch()
    d = case.batches[0].shape[1]
    layer = torch.nn.BatchNorm1d(
        d,
        eps=case.eps,
        momentum=case.momentum if momentum is None else momentum,
        dtype=torch.float64,
    )
    rec = {
        "init.running_mean": layer.running_mean.numpy().copy(),
        "init.running_var": layer.running_var.numpy().copy(),
        "init.gamma": layer.weight.detach().numpy().copy(),
        "init.beta": layer.bias.detach().numpy().copy(),
    }
    layer.train()
    with torch.no_grad():
        for step, batch in enumerate(case.batches):
            rec[f"train{step}.out"] = layer(torch.from_numpy(batch)).numpy()
            rec[f"train{step}.running_mean"] = layer.running_mean.numpy().copy()
            rec[f"train{step}.running_var"] = layer.running_var.numpy().copy()
        layer.eval()
        rec["eval.out"] = layer(torch.from_numpy(case.x_eval)).numpy()
        rec["eval.batchstats"] = torch.nn.functional.batch_norm(
            torch.from_numpy(case.x_eval),
            None,
            None,
            layer.weight,
            layer.bias,
            training=True,
            eps=case.eps,
        ).numpy()
    return rec


@cached
def _replayed_var(case: Case, unbiased: bool, start: float) -> list[np.ndarray]:
    """Running variance replayed with a chosen estimator and start value (diagnoses only)."""
    torch = import_torch()
    r = np.full(case.batches[0].shape[1], start)
    out = []
    for batch in case.batches:
        v = torch.from_numpy(batch).var(dim=0, unbiased=unbiased).numpy()
        r = (1 - case.momentum) * r + case.momentum * v
        out.append(r.copy())
    return out


def judge(prop: str, case_list: list[Case], pr: Probe, what: str = "BatchNorm1d"):
    early = framework_verdict(prop, pr, what) or error_verdict(prop, pr)
    if early:
        return early
    for case in case_list:
        k = case.name
        ref = reference(case)
        if prop == "init":
            for name in ("gamma", "beta", "running_mean", "running_var"):
                got = pr.arrays.get(f"{k}.init.{name}")
                if not close(got, ref[f"init.{name}"], 0.0):
                    extra = ""
                    if name == "running_var" and got is not None and np.all(got == 0):
                        return Verdict(
                            prop,
                            False,
                            "running_var starts at zeros. Diagnosis: "
                            "running_var initialised to zeros. PyTorch starts it at "
                            "ones (and running_mean at zeros), so that an untrained "
                            "layer in eval mode is the identity, not a division by "
                            "sqrt(eps).",
                            "running_var initialised to zeros",
                        )
                    return Verdict(
                        prop,
                        False,
                        describe_difference(got, ref[f"init.{name}"], f"{name} after construction")
                        + extra,
                    )
            if not bool(pr.arrays[f"{k}.init.training"]):
                return Verdict(
                    prop,
                    False,
                    "a new layer must be in training mode (training=True), as in PyTorch",
                )
            continue
        if prop == "modes":
            if bool(pr.arrays[f"{k}.eval.training"]) or not bool(pr.arrays[f"{k}.train.training"]):
                return Verdict(
                    prop, False, "eval() must set training=False and train() training=True"
                )
            for step in range(STEPS):
                got = pr.arrays.get(f"{k}.train{step}.out")
                want = ref[f"train{step}.out"]
                if not close(got, want, 1e-8, 1e-7):
                    return Verdict(
                        prop,
                        False,
                        describe_difference(
                            got, want, f"training-mode output at step {step + 1} ({k})"
                        ),
                    )
            continue
        if prop in ("mean", "var"):
            name = "running_mean" if prop == "mean" else "running_var"
            keras = reference(case, momentum=1 - case.momentum)
            for step in range(STEPS):
                got = pr.arrays.get(f"{k}.train{step}.{name}")
                want = ref[f"train{step}.{name}"]
                if close(got, want, 1e-9, 1e-7):
                    continue
                detail = describe_difference(got, want, f"{name} after step {step + 1} ({k})")
                if close(got, keras[f"train{step}.{name}"], 1e-9, 1e-7):
                    return Verdict(
                        prop,
                        False,
                        f"{detail}. Diagnosis: Keras momentum "
                        "convention. PyTorch's momentum weights the NEW batch: "
                        "running = (1 - momentum) * running + momentum * batch.",
                        "momentum convention inverted",
                    )
                if prop == "var":
                    mistakes = {
                        "running_var stored biased": (
                            _replayed_var(case, False, 1.0),
                            "PyTorch normalizes with the biased variance but stores the "
                            "UNBIASED one (times N/(N-1)) in running_var.",
                        ),
                        "running_var initialised to zeros": (
                            _replayed_var(case, True, 0.0),
                            "running_var must start at ones, not zeros.",
                        ),
                    }
                    for diag, (series, advice) in mistakes.items():
                        if close(got, series[step], 1e-9, 1e-7):
                            return Verdict(
                                prop, False, f"{detail}. Diagnosis: {diag}. {advice}", diag
                            )
                return Verdict(prop, False, detail)
            after_eval = pr.arrays.get(f"{k}.eval.{name}")
            if not close(after_eval, ref[f"train{STEPS - 1}.{name}"], 1e-9, 1e-7):
                return Verdict(
                    prop,
                    False,
                    f"{name} changed during a forward pass in eval "
                    "mode: running statistics are updated only in training.",
                    "running statistics updated in eval mode",
                )
            continue
        if prop == "eval":
            got = pr.arrays.get(f"{k}.eval.out")
            want = ref["eval.out"]
            if close(got, want, 1e-8, 1e-7):
                continue
            detail = describe_difference(got, want, f"eval-mode output ({k})")
            if close(got, ref["eval.batchstats"], 1e-8, 1e-7):
                return Verdict(
                    prop,
                    False,
                    f"{detail}. Diagnosis: batch statistics used in eval "
                    "mode. In eval mode normalize with running_mean and running_var, "
                    "so that a sample's output does not depend on its batch.",
                    "batch statistics in eval mode",
                )
            return Verdict(prop, False, detail + "." + output_property_hint(got, want))
        if prop == "backward":
            from bnlab.checks.backward import Case as BCase
            from bnlab.checks.backward import _autograd

            grads = _autograd(
                BCase(k, case.batches[0], ref["init.gamma"], ref["init.beta"], case.dout, case.eps)
            )
            for name in ("dx", "dgamma", "dbeta"):
                got = pr.arrays.get(f"{k}.{name}")
                if not close(got, grads[name], 1e-8, 1e-6):
                    hint = (
                        "." + dx_property_hint(got, grads[name], case.batches[0], case.eps)
                        if name == "dx"
                        else ""
                    )
                    return Verdict(
                        prop,
                        False,
                        describe_difference(
                            got,
                            grads[name],
                            f"{name} after backward ({k}); backward sets "
                            "self.dgamma and self.dbeta and returns dx",
                        )
                        + hint,
                    )
            continue
        raise KeyError(prop)
    messages = {
        "init": "gamma=1, beta=0, running_mean=0, running_var=1, training=True at construction",
        "modes": "train()/eval() switch modes; training outputs match torch.nn.BatchNorm1d",
        "mean": "running_mean follows torch.nn.BatchNorm1d (momentum weights the new batch)",
        "var": "running_var follows torch.nn.BatchNorm1d (unbiased batch variance stored)",
        "eval": "eval mode normalizes with the running statistics, like torch",
        "backward": "backward returns dx and sets dgamma, dbeta as torch.autograd",
    }
    return Verdict(prop, True, messages[prop])
