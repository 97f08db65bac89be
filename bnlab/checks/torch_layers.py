"""Checks of the PyTorch exercise: `BatchNormFunction`, `BatchNorm1d`, `BatchNorm2d`.

The learner's function and modules run in the probe (any call into torch's own batch norm is
recorded); ``torch.nn.BatchNorm1d/2d`` and autograd of ``F.batch_norm`` are the references, run
by the judge on the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bnlab.checks.harness import (
    Probe,
    Verdict,
    call_learner,
    compare_named,
    error_verdict,
    framework_exercise_forbids,
    framework_verdict,
    snapshot,
)
from bnlab.core.frameworks import import_torch
from bnlab.core.refcache import cached

STEPS = 3


@dataclass
class Case:
    name: str
    kind: str  # "1d" or "2d"
    num_features: int
    kwargs: dict
    batches: list
    x_eval: np.ndarray
    dout: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    extra: dict = field(default_factory=dict)


def _make(name, kind, shape, seed, **kwargs):
    rng = np.random.default_rng(seed)
    c = shape[1]
    shift = rng.normal(0, 2, size=(1, c) + (1,) * (len(shape) - 2))
    batches = [shift + rng.uniform(0.5, 3) * rng.standard_normal(shape) for _ in range(STEPS)]
    return Case(
        name,
        kind,
        c,
        kwargs,
        batches,
        shift + rng.standard_normal((3,) + shape[1:]),
        rng.standard_normal(shape),
        rng.uniform(0.5, 2, c),
        rng.standard_normal(c),
    )


def cases(prop: str, seed: int) -> list[Case]:
    s = 20000 + 1000 * seed
    if prop == "function":
        return [
            _make("dense", "1d", (8, 3), s),
            _make("conv", "2d", (4, 3, 5, 5), s + 1),
            _make("sequence", "1d", (5, 2, 6), s + 2),
            _make("pair", "1d", (2, 1), s + 3),
        ]
    if prop == "momentum_none":
        return [
            _make("momentum=None", "1d", (6, 3), s + 4, momentum=None),
            _make("conv momentum=None", "2d", (3, 2, 4, 4), s + 5, momentum=None),
        ]
    return [
        _make("BatchNorm1d(4)", "1d", (16, 4), s + 6),
        _make(
            "BatchNorm2d(3, eps=1e-3, momentum=0.3)",
            "2d",
            (4, 3, 5, 5),
            s + 7,
            eps=1e-3,
            momentum=0.3,
        ),
        _make("BatchNorm1d(3, affine=False)", "1d", (8, 3), s + 8, affine=False),
        _make(
            "BatchNorm2d(2, track_running_stats=False)",
            "2d",
            (3, 2, 4, 4),
            s + 9,
            track_running_stats=False,
        ),
    ]


def _call(pr, key, fn, *args, **kwargs):
    return call_learner(pr, key, fn, *args, forbidden=framework_exercise_forbids, **kwargs)


def _np(t):
    return None if t is None else snapshot(t, np.float64)


def probe_function(fn_cls, case_list) -> Probe:
    torch = import_torch()
    pr = Probe()
    for case in case_list:
        x = torch.tensor(case.batches[0], requires_grad=True)
        w = torch.tensor(case.weight, requires_grad=True)
        b = torch.tensor(case.bias, requires_grad=True)
        out = _call(pr, f"BatchNormFunction.apply on {case.name}", fn_cls.apply, x, w, b, 1e-5)
        if out is None:
            continue
        pr.arrays[f"{case.name}.out"] = _np(out)
        done = _call(pr, f"backward on {case.name}", out.backward, torch.tensor(case.dout))
        if done is None and pr.errors:
            continue
        for name, t in (("dx", x), ("dweight", w), ("dbias", b)):
            if t.grad is not None:
                pr.arrays[f"{case.name}.{name}"] = _np(t.grad)
    small = [
        torch.randn(4, 3, dtype=torch.float64, requires_grad=True),
        torch.rand(3, dtype=torch.float64, requires_grad=True) + 0.5,
        torch.randn(3, dtype=torch.float64, requires_grad=True),
    ]
    ok = _call(
        pr,
        "torch.autograd.gradcheck",
        torch.autograd.gradcheck,
        lambda x, w, b: fn_cls.apply(x, w, b, 1e-5),
        small,
        eps=1e-6,
        atol=1e-5,
    )
    pr.arrays["gradcheck"] = np.asarray(bool(ok))
    return pr


def _script(make_module, case: Case, pr: Probe, prefix: str, torch_ref: bool):
    """Construction, STEPS training steps, eval, backward; every state into pr.arrays."""
    torch = import_torch()
    call = (
        (lambda key, fn, *a, **k: fn(*a, **k))
        if torch_ref
        else (lambda key, fn, *a, **k: _call(pr, key, fn, *a, **k))
    )
    m = call(f"{case.name}: construction", make_module, case.num_features, **case.kwargs)
    if m is None:
        return None
    m = call(f"{case.name}: .double()", m.double)
    if m is None:
        return None
    rec = pr.arrays
    keys = call(f"{case.name}: state_dict()", m.state_dict)
    if keys is not None:
        rec[f"{prefix}.keys"] = np.asarray(sorted(keys))
    if getattr(m, "weight", None) is not None:
        with torch.no_grad():
            m.weight.copy_(torch.tensor(case.weight))
            m.bias.copy_(torch.tensor(case.bias))
    m.train()
    for step, batch in enumerate(case.batches):
        out = call(f"{case.name}: forward in training", m, torch.tensor(batch))
        if out is None:
            return m
        rec[f"{prefix}.train{step}.out"] = _np(out)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            value = getattr(m, name, None)
            if isinstance(value, torch.Tensor):
                rec[f"{prefix}.train{step}.{name}"] = _np(value)
    m.eval()
    out = call(f"{case.name}: forward in eval mode", m, torch.tensor(case.x_eval))
    if out is not None:
        rec[f"{prefix}.eval.out"] = _np(out)
    m.train()
    x = torch.tensor(case.batches[0], requires_grad=True)
    out = call(f"{case.name}: forward before backward", m, x)
    if (
        out is not None
        and call(f"{case.name}: backward", out.backward, torch.tensor(case.dout)) is None
        and x.grad is not None
    ):
        rec[f"{prefix}.dx"] = _np(x.grad)
    return m


def probe_modules(bn1d, bn2d, case_list) -> Probe:
    torch = import_torch()
    pr = Probe()
    for case in case_list:
        cls = bn1d if case.kind == "1d" else bn2d
        module = _script(cls, case, pr, case.name, torch_ref=False)
        if module is None:
            continue
        # state_dict interchange: torch's trained state into the learner's module, and back.
        # torch's own layer is switched off while a graded probe runs (the sandbox's
        # KernelBlock), so its state and its loading rules are written out here.
        loaded = _call(
            pr,
            f"state_dict: {case.name}: load_state_dict(torch's)",
            module.load_state_dict,
            reference_state(case),
        )
        if loaded is not None:
            module.eval()
            out = _call(
                pr,
                f"state_dict: {case.name}: eval after loading",
                module,
                torch.tensor(case.x_eval),
            )
            if out is not None:
                pr.arrays[f"{case.name}.loaded.eval"] = _np(out)
        try:
            problem = load_problem(module.state_dict(), reference_state(case), case)
        except Exception as err:  # noqa: BLE001
            problem = f"{type(err).__name__}: {err}"
        if problem:
            pr.errors.setdefault(
                "state_dict: export", f"torch could not load your state_dict: {problem}"
            )
        pr.arrays[f"{case.name}.exported"] = np.asarray(not problem)
    return pr


def reference_state(case: Case):
    """The state_dict of `torch.nn.BatchNorm1d/2d(C, **case.kwargs).double()` after training
    on case.batches: weight ones, bias zeros, running statistics updated with the unbiased
    batch variance (momentum weights the new batch; None: cumulative average)."""
    from collections import OrderedDict

    torch = import_torch()
    kw, c = case.kwargs, case.num_features
    state = OrderedDict()
    if kw.get("affine", True):
        state["weight"] = torch.ones(c, dtype=torch.float64)
        state["bias"] = torch.zeros(c, dtype=torch.float64)
    if kw.get("track_running_stats", True):
        momentum = kw.get("momentum", 0.1)
        mean, var = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
        for n, batch in enumerate(case.batches, start=1):
            b = torch.tensor(batch, dtype=torch.float64)
            dims = [d for d in range(b.dim()) if d != 1]
            factor = 1.0 / n if momentum is None else momentum
            mean = (1 - factor) * mean + factor * b.mean(dim=dims)
            var = (1 - factor) * var + factor * b.var(dim=dims, unbiased=True)
        state["running_mean"], state["running_var"] = mean, var
        state["num_batches_tracked"] = torch.tensor(len(case.batches), dtype=torch.long)
    state._metadata = OrderedDict({"": {"version": 2}})  # torch's _NormBase._version
    return state


def load_problem(learner_state, torch_state, case: Case) -> str:
    """Why `torch.nn.BatchNorm*.load_state_dict(learner_state)` (strict) would fail, or "".

    The rules of torch's `Module.load_state_dict` and `_NormBase._load_from_state_dict`: the
    keys must match (a missing num_batches_tracked is filled in when the state comes from a
    module whose version is below 2, as any plain nn.Module's is) and every tensor must have the
    layer's shape."""
    torch = import_torch()
    keys = list(learner_state.keys())
    missing = [k for k in torch_state if k not in keys]
    version = (getattr(learner_state, "_metadata", None) or {}).get("", {}).get("version")
    if "num_batches_tracked" in missing and (version is None or version < 2):
        missing.remove("num_batches_tracked")
    unexpected = [k for k in keys if k not in torch_state]
    errors = []
    if unexpected:
        errors.append(
            "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected)
        )
    if missing:
        errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing))
    for key, ref in torch_state.items():
        if key not in keys:
            continue
        value = learner_state[key]
        if not isinstance(value, torch.Tensor):
            errors.append(f"{key}: expected a tensor, got {type(value).__name__}")
        elif value.shape != ref.shape:
            errors.append(
                f"size mismatch for {key}: copying a param with shape {value.shape} from "
                f"checkpoint, the shape in current model is {ref.shape}."
            )
    return "; ".join(errors)


def probe(*learner_and_cases):
    *learner, case_list = learner_and_cases
    if len(learner) == 1:
        return probe_function(learner[0], case_list)
    return probe_modules(learner[0], learner[1], case_list)


@cached
def reference(case: Case, **override) -> dict:
    torch = import_torch()
    pr = Probe()
    cls = torch.nn.BatchNorm1d if case.kind == "1d" else torch.nn.BatchNorm2d
    kwargs = {**case.kwargs, **override}
    _script(
        cls,
        Case(
            case.name,
            case.kind,
            case.num_features,
            kwargs,
            case.batches,
            case.x_eval,
            case.dout,
            case.weight,
            case.bias,
        ),
        pr,
        "ref",
        torch_ref=True,
    )
    ref = cls(case.num_features, **case.kwargs).double()
    with torch.no_grad():
        for batch in case.batches:
            ref(torch.tensor(batch))
        ref.eval()
        pr.arrays["ref.loaded.eval"] = _np(ref(torch.tensor(case.x_eval)))
        affine = case.kwargs.get("affine", True)
        w, b = (torch.tensor(case.weight), torch.tensor(case.bias)) if affine else (None, None)
        pr.arrays["ref.eval.batchstats"] = _np(
            torch.nn.functional.batch_norm(
                torch.tensor(case.x_eval),
                None,
                None,
                w,
                b,
                training=True,
                eps=case.kwargs.get("eps", 1e-5),
            )
        )
    return pr.arrays


@cached
def _function_reference(case: Case):
    torch = import_torch()
    x = torch.tensor(case.batches[0], requires_grad=True)
    w = torch.tensor(case.weight, requires_grad=True)
    b = torch.tensor(case.bias, requires_grad=True)
    out = torch.nn.functional.batch_norm(x, None, None, w, b, training=True, eps=1e-5)
    out.backward(torch.tensor(case.dout))
    return {"out": _np(out), "dx": _np(x.grad), "dweight": _np(w.grad), "dbias": _np(b.grad)}


def judge(prop, case_list, pr: Probe, what="your layer"):
    # Errors of the state_dict round trip count against that property only.
    sd = prop == "state_dict"
    own = Probe(
        pr.arrays,
        {k: v for k, v in pr.errors.items() if k.startswith("state_dict") == sd},
        pr.framework_calls,
        from_sandbox=pr.from_sandbox,
    )
    early = framework_verdict(prop, own, what, numpy=False) or (
        error_verdict(prop, own) if not sd else None
    )
    if early:
        return early
    if sd:
        construction = {k: v for k, v in pr.errors.items() if not k.startswith("state_dict")}
        if construction:
            return error_verdict(prop, Probe(errors=construction, from_sandbox=pr.from_sandbox))
    if prop == "function":
        for case in case_list:
            ref = _function_reference(case)
            for name in ("out", "dx", "dweight", "dbias"):
                failure = compare_named(
                    prop,
                    pr.arrays.get(f"{case.name}.{name}"),
                    ref[name],
                    f"BatchNormFunction {name} on {case.name} input {case.batches[0].shape}",
                )
                if failure:
                    return failure
        if not bool(pr.arrays.get("gradcheck", False)):
            return Verdict(prop, False, "torch.autograd.gradcheck failed in float64")
        return Verdict(
            prop,
            True,
            "forward and hand-written backward match F.batch_norm and autograd; gradcheck passes",
        )
    for case in case_list:
        k = case.name
        ref = reference(case)
        if prop == "state_dict":
            if f"{k}.keys" not in pr.arrays:
                return Verdict(prop, False, f"{k}: state_dict() failed")
            got_keys = set(pr.arrays[f"{k}.keys"].tolist())
            want_keys = set(ref["ref.keys"].tolist())
            if got_keys != want_keys:
                missing = sorted(want_keys - got_keys)
                extra = sorted(got_keys - want_keys)
                name = (
                    "missing num_batches_tracked"
                    if missing == ["num_batches_tracked"]
                    else "wrong state_dict keys"
                )
                return Verdict(
                    prop,
                    False,
                    f"{k}: state_dict keys differ from torch's: missing "
                    f"{missing}, unexpected {extra}. Register weight and bias with "
                    "nn.Parameter, and running_mean, running_var, num_batches_tracked "
                    "with register_buffer (None when track_running_stats=False).",
                    name,
                )
            if not bool(pr.arrays.get(f"{k}.exported", False)):
                return Verdict(
                    prop,
                    False,
                    pr.errors.get("state_dict", "export failed"),
                    "wrong state_dict keys",
                )
            failure = compare_named(
                prop,
                pr.arrays.get(f"{k}.loaded.eval"),
                ref["ref.loaded.eval"],
                f"{k}: eval output after loading torch's state_dict",
            )
            if failure:
                return failure
            continue
        steps_to_check = ["running_mean", "running_var", "num_batches_tracked"]
        if prop in ("train", "momentum_none"):
            keras_like = (
                reference(case, momentum=1 - case.kwargs["momentum"])
                if (case.kwargs.get("momentum") is not None)
                else reference(case, momentum=0.9)
            )
            default_momentum = reference(case, momentum=0.1)
            for step in range(STEPS):
                failure = compare_named(
                    prop,
                    pr.arrays.get(f"{k}.train{step}.out"),
                    ref[f"ref.train{step}.out"],
                    f"{k}: training-mode output at step {step + 1}",
                    [
                        (
                            "statistics over the batch axis only",
                            _per_location(case, step),
                            "Diagnosis: statistics over the batch axis only. You reduced "
                            "over dim=0, which gives one mean and variance per (channel, "
                            "position). BatchNorm over (N, C, ...) reduces over every dim "
                            "except 1: dims = [d for d in range(x.dim()) if d != 1].",
                        )
                    ],
                )
                if failure:
                    return failure
                for name in steps_to_check:
                    want = ref.get(f"ref.train{step}.{name}")
                    got = pr.arrays.get(f"{k}.train{step}.{name}")
                    if want is None:
                        if got is not None:
                            return Verdict(
                                prop,
                                False,
                                f"{k}: {name} must be None when track_running_stats=False",
                            )
                        continue
                    mistakes = [
                        (
                            "momentum convention inverted",
                            keras_like.get(f"ref.train{step}.{name}"),
                            "Diagnosis: momentum convention inverted. PyTorch's momentum "
                            "weights the NEW batch: running = (1 - momentum) * running + "
                            "momentum * batch.",
                        ),
                    ]
                    if case.kwargs.get("momentum", 0.1) is None:
                        mistakes.append(
                            (
                                "cumulative average ignored",
                                default_momentum.get(f"ref.train{step}.{name}"),
                                "momentum=None means a cumulative average: "
                                "factor 1 / num_batches_tracked.",
                            )
                        )
                    if name == "running_var":
                        mistakes.append(
                            (
                                "running variance biased",
                                _biased(case, step),
                                "running_var stores the UNBIASED batch variance.",
                            )
                        )
                    failure = compare_named(
                        prop, got, want, f"{k}: {name} after step {step + 1}", mistakes
                    )
                    if failure:
                        return failure
            continue
        if prop == "eval":
            failure = compare_named(
                prop,
                pr.arrays.get(f"{k}.eval.out"),
                ref["ref.eval.out"],
                f"{k}: output in eval mode",
                [
                    (
                        "batch statistics in eval mode",
                        ref["ref.eval.batchstats"]
                        if case.kwargs.get("track_running_stats", True)
                        else None,
                        "Diagnosis: batch statistics in eval mode. In eval mode "
                        "normalize with running_mean and running_var.",
                    )
                ],
            )
            if failure:
                return failure
            failure = compare_named(
                prop,
                pr.arrays.get(f"{k}.dx"),
                ref.get("ref.dx"),
                f"{k}: dx through your layer in training mode",
            )
            if failure:
                return failure
            continue
        raise KeyError(prop)
    messages = {
        "train": "training outputs and running statistics equal torch.nn.BatchNorm1d/2d",
        "momentum_none": "momentum=None gives the cumulative average, as in torch",
        "eval": "eval-mode outputs and gradients equal torch's",
        "state_dict": "state_dict keys equal torch's, and state dicts load both ways",
    }
    return Verdict(prop, True, messages[prop])


@cached
def _per_location(case: Case, step: int):
    """The training output with statistics over dim 0 only (per channel and position); None
    for (N, C) inputs, where that is the right reduction."""
    torch = import_torch()
    batch = torch.tensor(case.batches[step])
    if batch.dim() == 2:
        return None
    shape = [1, -1] + [1] * (batch.dim() - 2)
    eps = case.kwargs.get("eps", 1e-5)
    flat = batch.reshape(batch.shape[0], -1)
    x_hat = torch.nn.functional.batch_norm(flat, None, None, training=True, eps=eps)
    out = x_hat.reshape(batch.shape)
    if case.kwargs.get("affine", True):
        out = out * torch.tensor(case.weight).view(shape) + torch.tensor(case.bias).view(shape)
    return _np(out)


@cached
def _biased(case: Case, step: int):
    torch = import_torch()
    if not case.kwargs.get("track_running_stats", True):
        return None
    m = case.kwargs.get("momentum", 0.1)
    dims = (
        (0,)
        if case.kind == "1d" and case.batches[0].ndim == 2
        else tuple(i for i in range(case.batches[0].ndim) if i != 1)
    )
    r = np.ones(case.num_features)
    for i, batch in enumerate(case.batches[: step + 1]):
        v = torch.tensor(batch).var(dim=dims, unbiased=False).numpy()
        factor = 1.0 / (i + 1) if m is None else m
        r = (1 - factor) * r + factor * v
    return r
