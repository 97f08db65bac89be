"""Checks of the synchronized BatchNorm exercise: `SyncBatchNorm` in a 2-process gloo group.

The probe runs the learner's module in two forked ranks (bnlab.checks.ranks), each holding a
slice of one global batch; the slices differ in size, so a layer that averages the ranks' means
as if they had the same count is caught. The judge compares each rank's outputs, gradients and
running statistics with `torch.nn.BatchNorm1d/2d` run on the whole batch at once (what
`nn.SyncBatchNorm` computes; it runs on GPUs only), and names the known mistakes.

Each property is judged on inputs that isolate it:

* ``forward``: the ranks' slices come from different distributions, so every statistic that
  is not synchronized (the mean, the variance, the count) changes the output;
* ``backward`` and ``running``: rank 1's slice is rank 0's repeated twice, so each slice has
  the global batch's mean and (biased) variance and a mistake in the forward's synchronization
  cannot cost these points twice; what still depends on the other rank (the gradient sums,
  the global count) is what these properties judge.
"""

from __future__ import annotations

from dataclasses import dataclass

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
from bnlab.checks.ranks import run_ranks
from bnlab.core.frameworks import import_torch
from bnlab.core.refcache import cached

WORLD = 2
TIMEOUT = 10.0  # seconds a collective may wait for the other rank (the checks take ms)


@dataclass
class Case:
    name: str
    prop: str  # "forward", "backward" or "running"
    kwargs: dict
    sizes: tuple[int, ...]  # rows of the global batch per rank
    batches: list  # global training batches, (sum(sizes), C, ...)
    x_eval: np.ndarray  # global eval batch, same split
    dout: np.ndarray  # global upstream gradient
    weight: np.ndarray
    bias: np.ndarray

    @property
    def num_features(self) -> int:
        return int(self.batches[0].shape[1])

    def part(self, array: np.ndarray, rank: int) -> np.ndarray:
        start = sum(self.sizes[:rank])
        return array[start : start + self.sizes[rank]]


def _different(rng, shape, sizes):
    """A global batch whose rank slices come from different distributions."""
    c = shape[1]
    per_channel = (1, c) + (1,) * (len(shape) - 2)
    parts = []
    for n in sizes:
        shift = rng.normal(0, 2, size=per_channel)
        scale = rng.uniform(0.5, 3, size=per_channel)
        parts.append(shift + scale * rng.standard_normal((n, *shape[1:])))
    return np.concatenate(parts)


def _mirrored(rng, shape, sizes):
    """A global batch whose every rank slice has the global mean and biased variance: rank
    r's slice is rank 0's repeated sizes[r] / sizes[0] times."""
    c = shape[1]
    per_channel = (1, c) + (1,) * (len(shape) - 2)
    base = rng.normal(0, 2, size=per_channel) + rng.uniform(0.5, 3) * rng.standard_normal(
        (sizes[0], *shape[1:])
    )
    return np.concatenate([np.concatenate([base] * (n // sizes[0])) for n in sizes])


def _make(name, prop, shape, sizes, seed, steps=1, **kwargs):
    rng = np.random.default_rng(seed)
    full = (sum(sizes), *shape[1:])
    build = _different if prop == "forward" else _mirrored
    batches = [build(rng, full, sizes) for _ in range(steps)]
    return Case(
        name,
        prop,
        kwargs,
        tuple(sizes),
        batches,
        _different(rng, full, sizes),
        rng.standard_normal(full),
        rng.uniform(0.5, 2, shape[1]),
        rng.standard_normal(shape[1]),
    )


def cases(prop: str, seed: int) -> list[Case]:
    s = 50000 + 1000 * seed
    if prop == "forward":
        return [
            _make("SyncBatchNorm(3) on (3+5, 3, 4, 4)", prop, (0, 3, 4, 4), (3, 5), s, 2),
            _make("SyncBatchNorm(4, eps=1e-3) on (6+2, 4)", prop, (0, 4), (6, 2), s + 1, eps=1e-3),
            _make(
                "SyncBatchNorm(2, affine=False) on (2+4, 2, 5)",
                prop,
                (0, 2, 5),
                (2, 4),
                s + 2,
                affine=False,
            ),
        ]
    if prop == "backward":
        return [
            _make("SyncBatchNorm(3) on (3+6, 3, 4, 4)", prop, (0, 3, 4, 4), (3, 6), s + 3),
            _make("SyncBatchNorm(4) on (2+4, 4)", prop, (0, 4), (2, 4), s + 4),
        ]
    if prop == "running":
        return [
            _make("SyncBatchNorm(3) on (3+6, 3, 4, 4)", prop, (0, 3, 4, 4), (3, 6), s + 5, 3),
            _make(
                "SyncBatchNorm(4, eps=1e-3, momentum=0.3) on (2+4, 4)",
                prop,
                (0, 4),
                (2, 4),
                s + 6,
                3,
                eps=1e-3,
                momentum=0.3,
            ),
            _make(
                "SyncBatchNorm(2, momentum=None) on (1+3, 2, 3, 3)",
                prop,
                (0, 2, 3, 3),
                (1, 3),
                s + 7,
                3,
                momentum=None,
            ),
        ]
    raise KeyError(prop)


def _np(t):
    return None if t is None else snapshot(t, np.float64)


def _rank_script(module_cls, case: Case, rank: int, pr: Probe) -> bool:
    """One case on one rank; False as soon as learner code fails (the other rank will then
    wait in a collective, so this rank stops rather than call a different one)."""
    torch = import_torch()

    def call(key, fn, *args, **kwargs):
        errors = len(pr.errors)
        value = call_learner(
            pr, f"{case.name}: {key}", fn, *args, forbidden=framework_exercise_forbids, **kwargs
        )
        return value, len(pr.errors) == errors

    def local(array):
        return torch.tensor(case.part(array, rank))

    module, ok = call("construction", module_cls, case.num_features, **case.kwargs)
    if not ok:
        return False
    module, ok = call(".double()", module.double)
    if not ok:
        return False
    if getattr(module, "weight", None) is not None:
        with torch.no_grad():
            module.weight.copy_(torch.tensor(case.weight))
            module.bias.copy_(torch.tensor(case.bias))
    module.train()
    rec = pr.arrays
    if case.prop == "backward":
        x = local(case.batches[0]).requires_grad_(True)
        out, ok = call("forward in training", module, x)
        if not ok:
            return False
        _, ok = call("backward", out.backward, local(case.dout))
        if not ok:
            return False
        rec[f"{case.name}.dx"] = _np(x.grad)
        if getattr(module, "weight", None) is not None:
            rec[f"{case.name}.dweight"] = _np(module.weight.grad)
            rec[f"{case.name}.dbias"] = _np(module.bias.grad)
        return True
    for step, batch in enumerate(case.batches):
        out, ok = call("forward in training", module, local(batch))
        if not ok:
            return False
        rec[f"{case.name}.train{step}.out"] = _np(out)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            value = getattr(module, name, None)
            if isinstance(value, torch.Tensor):
                rec[f"{case.name}.train{step}.{name}"] = _np(value)
    if case.prop == "running":
        module.eval()
        out, ok = call("forward in eval mode", module, local(case.x_eval))
        if not ok:
            return False
        rec[f"{case.name}.eval.out"] = _np(out)
    return True


def probe(module_cls, case_list) -> Probe:
    """Every case in one 2-rank group; one Probe with each rank's arrays as `rank{r}.KEY`."""

    def work(rank: int, world_size: int) -> Probe:
        pr = Probe()
        for case in case_list:
            if not _rank_script(module_cls, case, rank, pr):
                break
        return pr

    merged = Probe()
    for rank, pr in enumerate(run_ranks(work, WORLD, TIMEOUT)):
        for key, value in pr.arrays.items():
            merged.arrays[f"rank{rank}.{key}"] = value
        for key, message in pr.errors.items():
            label = key if key.startswith("rank ") else f"rank {rank}: {key}"
            merged.errors[label] = message
        for call in pr.framework_calls:
            if call not in merged.framework_calls:
                merged.framework_calls.append(call)
    # The first rank to fail tells what went wrong; the others mostly waited for it.
    order = sorted(merged.errors, key=lambda k: "after rank" in merged.errors[k][:40])
    merged.errors = {k: merged.errors[k] for k in order}
    return merged


# ----------------------------------------------------------------------------- references


def _reduce_dims(x: np.ndarray) -> tuple[int, ...]:
    return tuple(d for d in range(x.ndim) if d != 1)


def _shape(x: np.ndarray) -> tuple[int, ...]:
    return (1, -1) + (1,) * (x.ndim - 2)


def _layer(case: Case, **override):
    """torch.nn.BatchNorm1d/2d with the case's arguments, in float64."""
    torch = import_torch()
    cls = torch.nn.BatchNorm2d if case.batches[0].ndim == 4 else torch.nn.BatchNorm1d
    layer = cls(case.num_features, **{**case.kwargs, **override}).double()
    if layer.weight is not None:
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(case.weight))
            layer.bias.copy_(torch.tensor(case.bias))
    return layer


@cached
def reference(case: Case, **override) -> dict:
    """The whole batch through torch's layer: training outputs and running statistics per
    step, the eval output, and (for backward) dx and each rank's local dweight and dbias."""
    torch = import_torch()
    layer = _layer(case, **override)
    ref: dict = {}
    for step, batch in enumerate(case.batches):
        out = layer(torch.tensor(batch))
        ref[f"train{step}.out"] = _np(out)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            value = getattr(layer, name, None)
            if value is not None:
                ref[f"train{step}.{name}"] = _np(value)
    layer.eval()
    with torch.no_grad():
        ref["eval.out"] = _np(layer(torch.tensor(case.x_eval)))
    if case.prop == "backward":
        for rank in range(len(case.sizes)):
            layer = _layer(case)
            x = torch.tensor(case.batches[0], requires_grad=True)
            # This rank's loss alone: its slice of dout, zeros elsewhere.
            dout = np.zeros_like(case.dout)
            start = sum(case.sizes[:rank])
            dout[start : start + case.sizes[rank]] = case.part(case.dout, rank)
            layer(x).backward(torch.tensor(dout))
            ref[f"rank{rank}.dweight"] = _np(layer.weight.grad)
            ref[f"rank{rank}.dbias"] = _np(layer.bias.grad)
        layer = _layer(case)
        x = torch.tensor(case.batches[0], requires_grad=True)
        layer(x).backward(torch.tensor(case.dout))
        ref["dx"] = _np(x.grad)
    return ref


def _normalize(x, mean, var, case: Case) -> np.ndarray:
    shape = _shape(x)
    eps = case.kwargs.get("eps", 1e-5)
    with np.errstate(all="ignore"):
        out = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if case.kwargs.get("affine", True):
        out = out * case.weight.reshape(shape) + case.bias.reshape(shape)
    return out


def _forward_mistakes(case: Case, step: int, rank: int) -> list[tuple[str, np.ndarray, str]]:
    """The outputs on `rank` of the known ways to get the synchronization wrong."""
    batch = case.batches[step]
    dims = _reduce_dims(batch)
    parts = [case.part(batch, r) for r in range(len(case.sizes))]
    mine = parts[rank]
    n = np.array([p.size / p.shape[1] for p in parts])
    total = n.sum()
    g_mean = batch.mean(axis=dims)
    g_var = batch.var(axis=dims)
    means = [p.mean(axis=dims) for p in parts]
    l_mean, l_var = means[rank], mine.var(axis=dims)
    around_global = ((mine - g_mean.reshape(_shape(mine))) ** 2).mean(axis=dims)
    avg_mean = sum(means) / len(parts)
    avg_var = sum(p.var(axis=dims) for p in parts) / len(parts)
    avg_square = sum((p**2).mean(axis=dims) for p in parts) / len(parts)
    sums, squares = batch.sum(axis=dims), (batch**2).sum(axis=dims)
    local_mean = sums / n[rank]
    assumed = n[rank] * len(parts)
    return [
        (
            "statistics not synchronized",
            _normalize(mine, l_mean, l_var, case),
            "Each rank normalized with its own slice's mean and variance, as plain BatchNorm "
            "does: all-reduce the per-channel sum, sum of squares and count, and compute the "
            "mean and variance of the global batch from them.",
        ),
        (
            "only the mean synchronized",
            _normalize(mine, g_mean, l_var, case),
            "The mean is the global one but the variance is this rank's own: all-reduce the "
            "sum of squares too (E[x^2] - mean^2 over the global batch).",
        ),
        (
            "only the mean synchronized",
            _normalize(mine, g_mean, around_global, case),
            "The mean is the global one but the variance averages only this rank's squared "
            "deviations: all-reduce the sum of squares too, and divide by the global count.",
        ),
        (
            "count forgotten",
            _normalize(mine, avg_mean, avg_var, case),
            "You averaged the ranks' means and variances as if every rank held the same number "
            "of values; here the slices differ in size. All-reduce the sums and the count, "
            "then divide.",
        ),
        (
            "count forgotten",
            _normalize(mine, avg_mean, avg_square - avg_mean**2, case),
            "You averaged the ranks' means and mean squares as if every rank held the same "
            "number of values; here the slices differ in size. All-reduce the sums and the "
            "count, then divide.",
        ),
        (
            "count forgotten",
            _normalize(mine, local_mean, squares / n[rank] - local_mean**2, case),
            "You divided the all-reduced sums by this rank's own count: all-reduce the count "
            "too, and divide by the global count.",
        ),
        (
            "count forgotten",
            _normalize(mine, sums / assumed, squares / assumed - (sums / assumed) ** 2, case),
            "You divided the all-reduced sums by this rank's count times the number of ranks, "
            "as if every rank held the same number of values; here the slices differ in size. "
            "All-reduce the count too.",
        ),
        (
            "unbiased variance in the normalization",
            _normalize(mine, g_mean, g_var * total / (total - 1), case),
            "Normalize with the biased (population) variance of the global batch; the unbiased "
            "one belongs in running_var only.",
        ),
    ]


def _eval_mistakes(case: Case, rank: int) -> list[tuple[str, np.ndarray, str]]:
    """Eval-mode outputs on `rank` normalized with batch statistics: this rank's own, or the
    whole (synchronized) batch's."""
    dims = _reduce_dims(case.x_eval)
    mine = case.part(case.x_eval, rank)
    whole = _normalize(case.x_eval, case.x_eval.mean(axis=dims), case.x_eval.var(axis=dims), case)
    return [
        (
            "batch statistics in eval mode",
            _normalize(mine, mine.mean(axis=dims), mine.var(axis=dims), case),
            "In eval mode normalize with running_mean and running_var, and talk to no other rank.",
        ),
        (
            "batch statistics in eval mode",
            case.part(whole, rank),
            "In eval mode normalize with running_mean and running_var, not with the "
            "(synchronized) statistics of the batch.",
        ),
    ]


def _backward_mistakes(case: Case, rank: int, ref_dx_part: np.ndarray):
    """dx on `rank` of the known backward mistakes (on mirrored data: each slice has the
    global statistics, so x_hat and 1/std are the same whatever the forward synchronized)."""
    x = case.batches[0]
    dims = _reduce_dims(x)
    shape = _shape(x)
    eps = case.kwargs.get("eps", 1e-5)
    inv_std = 1.0 / np.sqrt(x.var(axis=dims) + eps)
    mine = case.part(x, rank)
    x_hat = (mine - x.mean(axis=dims).reshape(shape)) * inv_std.reshape(shape)
    dy = case.part(case.dout, rank)
    scale = (case.weight * inv_std).reshape(shape)
    n = mine.size / mine.shape[1]
    total = x.size / x.shape[1]
    l_dy, l_dyx = dy.sum(axis=dims).reshape(shape), (dy * x_hat).sum(axis=dims).reshape(shape)
    all_x_hat = (x - x.mean(axis=dims).reshape(shape)) * inv_std.reshape(shape)
    g_dy = case.dout.sum(axis=dims).reshape(shape)
    g_dyx = (case.dout * all_x_hat).sum(axis=dims).reshape(shape)
    advice_local = (
        "Your backward used this rank's sums of dy and dy * x_hat: the loss depends on every "
        "rank's outputs through the global mean and variance, so all-reduce the two sums "
        "(sum(dy), sum(dy * x_hat)) in backward and divide by the global count."
    )
    return [
        ("backward not synchronized", scale * (dy - (l_dy + x_hat * l_dyx) / n), advice_local),
        ("backward not synchronized", scale * (dy - (l_dy + x_hat * l_dyx) / total), advice_local),
        (
            "count forgotten",
            scale * (dy - (g_dy + x_hat * g_dyx) / (n * len(case.sizes))),
            "You divided the all-reduced sums by this rank's count times the number of ranks, "
            "as if every rank held the same number of values; here the slices differ in size: "
            "divide by the global count, all-reduced in the forward pass.",
        ),
        (
            "count in backward is the local one",
            scale * (dy - (g_dy + x_hat * g_dyx) / n),
            "You all-reduced the sums in backward but divided them by this rank's count: "
            "divide by the global count, as in the forward pass.",
        ),
    ]


# ----------------------------------------------------------------------------- judge


def _running_mistakes(case: Case, step: int, name: str, rank: int):
    if name == "num_batches_tracked":
        return []
    mistakes = []
    momentum = case.kwargs.get("momentum", 0.1)
    if momentum is not None:
        inverted = reference(case, momentum=1 - momentum)
        mistakes.append(
            (
                "momentum convention inverted",
                inverted.get(f"train{step}.{name}"),
                "PyTorch's momentum weights the NEW batch: running = (1 - momentum) * "
                "running + momentum * batch.",
            )
        )
    else:
        mistakes.append(
            (
                "cumulative average ignored",
                reference(case, momentum=0.1).get(f"train{step}.{name}"),
                "momentum=None means a cumulative average: factor 1 / num_batches_tracked.",
            )
        )
    if name == "running_var":
        for label, which in (
            ("running variance biased", "biased"),
            ("running variance unbiased with the local count", "local"),
            ("count forgotten", "assumed"),
        ):
            mistakes.append(
                (
                    label,
                    _running_var(case, step, rank, which),
                    "running_var stores the UNBIASED variance of the GLOBAL batch: "
                    "var * N / (N - 1) with N the global count.",
                )
            )
    return mistakes


@cached
def _running_var(case: Case, step: int, rank: int, which: str) -> np.ndarray:
    """running_var on `rank` after `step` when the batch variance stored is the biased one
    ("biased"), or is unbiased with the rank's own count ("local") or with the rank's count
    times the number of ranks ("assumed")."""
    momentum = case.kwargs.get("momentum", 0.1)
    run = np.ones(case.num_features)
    for i, batch in enumerate(case.batches[: step + 1]):
        var = batch.var(axis=_reduce_dims(batch))
        if which in ("local", "assumed"):
            n = case.sizes[rank] * batch[0, 0].size
            n *= len(case.sizes) if which == "assumed" else 1
            var = var * n / max(n - 1, 1)
        factor = 1.0 / (i + 1) if momentum is None else momentum
        run = (1 - factor) * run + factor * var
    return run


def judge(prop, case_list, pr: Probe, what="SyncBatchNorm"):
    early = framework_verdict(prop, pr, what, numpy=False) or error_verdict(prop, pr)
    if early:
        return early
    for case in case_list:
        ref = reference(case)
        for rank in range(len(case.sizes)):
            key = f"rank{rank}.{case.name}"
            where = f"{case.name}, rank {rank} of {len(case.sizes)}"
            if prop == "forward":
                for step in range(len(case.batches)):
                    failure = compare_named(
                        prop,
                        pr.arrays.get(f"{key}.train{step}.out"),
                        case.part(ref[f"train{step}.out"], rank),
                        f"{where}: training-mode output at step {step + 1}",
                        _forward_mistakes(case, step, rank),
                    )
                    if failure:
                        return failure
            elif prop == "backward":
                dx_ref = case.part(ref["dx"], rank)
                checks = [
                    ("dx", dx_ref, _backward_mistakes(case, rank, dx_ref)),
                    ("dweight", ref[f"rank{rank}.dweight"], []),
                    ("dbias", ref[f"rank{rank}.dbias"], []),
                ]
                for name, want, mistakes in checks:
                    if name != "dx":
                        mistakes = [
                            (
                                "parameter gradients all-reduced",
                                sum(ref[f"rank{r}.{name}"] for r in range(len(case.sizes))),
                                f"{name} must be the sum over this rank's slice only, as in "
                                "nn.SyncBatchNorm: DistributedDataParallel averages parameter "
                                "gradients across ranks itself.",
                            )
                        ]
                    failure = compare_named(
                        prop,
                        pr.arrays.get(f"{key}.{name}"),
                        want,
                        f"{where}: {name}",
                        mistakes,
                    )
                    if failure:
                        return failure
            elif prop == "running":
                for step in range(len(case.batches)):
                    for name in ("running_mean", "running_var", "num_batches_tracked"):
                        failure = compare_named(
                            prop,
                            pr.arrays.get(f"{key}.train{step}.{name}"),
                            ref[f"train{step}.{name}"],
                            f"{where}: {name} after step {step + 1}",
                            _running_mistakes(case, step, name, rank),
                        )
                        if failure:
                            return failure
                failure = compare_named(
                    prop,
                    pr.arrays.get(f"{key}.eval.out"),
                    case.part(ref["eval.out"], rank),
                    f"{where}: output in eval mode",
                    _eval_mistakes(case, rank),
                )
                if failure:
                    return failure
            else:
                raise KeyError(prop)
    messages = {
        "forward": "each rank's training output equals torch.nn.BatchNorm on the whole batch "
        "(statistics all-reduced over ranks of different sizes)",
        "backward": "dx equals the whole batch's gradient on every rank; dweight and dbias are "
        "each rank's own sums, as in nn.SyncBatchNorm",
        "running": "running statistics follow the global batch (unbiased with the global "
        "count); eval mode uses them",
    }
    return Verdict(prop, True, messages[prop])
