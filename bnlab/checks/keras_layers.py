"""Checks of the Keras exercise: `BatchNormalization` (a keras.layers.Layer) and
`batchnorm_custom_gradient` (tf.custom_gradient), against keras.layers.BatchNormalization."""

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
    framework_exercise_forbids,
    framework_verdict,
    output_property_hint,
    snapshot,
)
from bnlab.core.frameworks import import_keras, quiet_stderr
from bnlab.core.refcache import cached

STEPS = 3
ATOL, RTOL = 2e-5, 2e-5  # the layers compute in float32


@dataclass
class Case:
    name: str
    config: dict
    batches: list
    x_eval: np.ndarray
    weights: list


def _make(name, shape, seed, **config):
    rng = np.random.default_rng(seed)
    axis = config.get("axis", -1) % len(shape)
    c = shape[axis]
    bshape = [1] * len(shape)
    bshape[axis] = c
    shift = rng.normal(0, 2, size=bshape)
    batches = [
        (shift + rng.uniform(0.5, 3) * rng.standard_normal(shape)).astype("float32")
        for _ in range(STEPS)
    ]
    weights = []
    if config.get("scale", True):
        weights.append(rng.uniform(0.5, 2, c).astype("float32"))
    if config.get("center", True):
        weights.append(rng.standard_normal(c).astype("float32"))
    weights += [np.zeros(c, "float32"), np.ones(c, "float32")]
    x_eval = (shift + rng.standard_normal(shape)).astype("float32")
    return Case(name, config, batches, x_eval, weights)


def cases(prop: str, seed: int) -> list[Case]:
    s = 40000 + 1000 * seed
    if prop == "axis":
        return [
            _make("axis=1 on (N, C, H, W)", (4, 5, 3, 5), s, axis=1),
            _make("axis=2 on (N, L, C)", (6, 2, 3), s + 1, axis=2, momentum=0.5),
        ]
    if prop == "custom_gradient":
        return [_make("dense", (8, 3), s + 2), _make("images NHWC", (2, 4, 4, 3), s + 3)]
    if prop == "fit":
        return [_make("model.fit", (64, 6), s + 4)]
    return [
        _make("(N, C) defaults", (16, 4), s + 5),
        _make("NHWC, momentum=0.9, epsilon=0.01", (4, 3, 3, 6), s + 6, momentum=0.9, epsilon=0.01),
        _make("center=False, scale=False", (10, 3), s + 7, center=False, scale=False),
    ]


def _call(pr, key, fn, *args, **kwargs):
    return call_learner(pr, key, fn, *args, forbidden=framework_exercise_forbids, **kwargs)


def _arr(x):
    keras = import_keras()
    return snapshot(keras.ops.convert_to_numpy(x), np.float64)


def _script(cls, case: Case, pr: Probe, prefix: str, reference: bool):
    call = (
        (lambda key, fn, *a, **k: fn(*a, **k))
        if reference
        else (lambda key, fn, *a, **k: _call(pr, key, fn, *a, **k))
    )
    layer = call(f"{case.name}: construction", cls, **case.config)
    if (
        layer is None
        or call(f"{case.name}: build", layer.build, case.batches[0].shape) is None
        and not reference
        and pr.errors
    ):
        return None
    if (
        call(f"{case.name}: set_weights", layer.set_weights, case.weights) is None
        and not reference
        and pr.errors
    ):
        return None
    rec = pr.arrays
    loaded = call(f"{case.name}: get_weights", layer.get_weights)  # right after set_weights
    if loaded is not None:
        for i, w in enumerate(loaded):
            rec[f"{prefix}.weights.{i}"] = snapshot(w, np.float64)
    for step, batch in enumerate(case.batches):
        out = call(f"{case.name}: call(training=True)", layer, batch, training=True)
        if out is None:
            return layer
        rec[f"{prefix}.train{step}.out"] = _arr(out)
        weights = call(f"{case.name}: get_weights", layer.get_weights)
        if weights is not None and len(weights) >= 2:
            rec[f"{prefix}.train{step}.moving_mean"] = snapshot(weights[-2], np.float64)
            rec[f"{prefix}.train{step}.moving_variance"] = snapshot(weights[-1], np.float64)
    for mode, kwargs in (("false", {"training": False}), ("omitted", {})):
        out = call(
            f"{case.name}: call({'training=False' if kwargs else ''})",
            layer,
            case.x_eval,
            **kwargs,
        )
        if out is not None:
            rec[f"{prefix}.{mode}.out"] = _arr(out)
    return layer


def _fit(cls, case: Case, pr: Probe, prefix: str, reference: bool):
    keras = import_keras()
    call = (
        (lambda key, fn, *a, **k: fn(*a, **k))
        if reference
        else (lambda key, fn, *a, **k: _call(pr, key, fn, *a, **k))
    )
    keras.utils.set_random_seed(0)
    x = np.concatenate(case.batches)
    y = (x[:, 0] > np.median(x[:, 0])).astype("int64")
    bn = call("model.fit: construction", cls)
    if bn is None:
        return
    init = keras.initializers.GlorotUniform(seed=1)
    model = keras.Sequential(
        [
            keras.Input(shape=(x.shape[1],)),
            keras.layers.Dense(5, kernel_initializer=init),
            bn,
            keras.layers.Dense(2, kernel_initializer=init),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    with quiet_stderr():
        done = call(
            "model.fit", model.fit, x, y, batch_size=32, epochs=2, shuffle=False, verbose=0
        )
    if done is None and not reference:
        return
    weights = bn.get_weights()
    pr.arrays[f"{prefix}.fit.moving_mean"] = snapshot(weights[-2], np.float64)
    pr.arrays[f"{prefix}.fit.moving_variance"] = snapshot(weights[-1], np.float64)


def _custom(fn, case: Case, pr: Probe, prefix: str, reference: bool):
    keras = import_keras()
    import tensorflow as tf

    x = tf.constant(case.batches[0])
    gamma, beta = tf.constant(case.weights[0]), tf.constant(case.weights[1])
    dout = tf.constant(case.x_eval)
    targets = [x, gamma, beta]
    with tf.GradientTape() as tape:
        tape.watch([x, gamma, beta])
        if reference:
            layer = keras.layers.BatchNormalization(epsilon=1e-3)
            layer.build(x.shape)
            layer.gamma.assign(gamma)
            layer.beta.assign(beta)
            targets = [x, layer.gamma, layer.beta]  # the layer differentiates its variables
            out = layer(x, training=True)
        else:
            out = _call(pr, f"batchnorm_custom_gradient on {case.name}", fn, x, gamma, beta, 1e-3)
            if out is None:
                return
        loss = tf.reduce_sum(out * dout)
    grads = tape.gradient(loss, targets)
    pr.arrays[f"{prefix}.out"] = _arr(out)
    for name, g in zip(("dx", "dgamma", "dbeta"), grads, strict=True):
        if g is not None:
            pr.arrays[f"{prefix}.{name}"] = _arr(g)


def probe(learner, case_list) -> Probe:
    pr = Probe()
    for case in case_list:
        if "custom" in case.name or case.name in ("dense", "images NHWC"):
            _custom(learner, case, pr, case.name, reference=False)
        elif case.name == "model.fit":
            _fit(learner, case, pr, case.name, reference=False)
        else:
            _script(learner, case, pr, case.name, reference=False)
    return pr


@cached
def reference(case: Case, prop: str, **override) -> dict:
    keras = import_keras()
    pr = Probe()
    if prop == "custom_gradient":
        _custom(None, case, pr, "ref", reference=True)
    elif prop == "fit":
        _fit(keras.layers.BatchNormalization, case, pr, "ref", reference=True)
    else:
        config = {**case.config, **override}
        _script(
            keras.layers.BatchNormalization,
            Case(case.name, config, case.batches, case.x_eval, case.weights),
            pr,
            "ref",
            True,
        )
        layer = keras.layers.BatchNormalization(**config)
        layer.build(case.batches[0].shape)
        layer.set_weights(case.weights)
        pr.arrays["ref.batchstats"] = _arr(layer(case.x_eval, training=True))
    return pr.arrays


def _unbiased_series(case: Case):
    axis = case.config.get("axis", -1) % case.batches[0].ndim
    dims = tuple(i for i in range(case.batches[0].ndim) if i != axis)
    m = case.config.get("momentum", 0.99)
    r, out = case.weights[-1].astype(np.float64), []
    for batch in case.batches:
        r = m * r + (1 - m) * np.asarray(batch, np.float64).var(axis=dims, ddof=1)
        out.append(r.copy())
    return out


def _float32_sum_atol(case: Case) -> dict:
    """Per-channel tolerances for dgamma = sum(dout * x_hat) and dbeta = sum(dout) over the
    batch (and positions), both computed in float32 by the learner and by Keras.

    Summing M float32 terms in any order is off by at most gamma_M * sum|terms| with
    gamma_M = M u / (1 - M u), u = 2**-24; x_hat in float32 carries a relative error of about
    u * |x| / sd (the cancellation in x - mean). Two float32 computations may each be off by
    that much, so each may differ from the other by twice the bound (plus the usual ATOL).
    """
    x = np.asarray(case.batches[0], np.float64)
    dout = np.abs(np.asarray(case.x_eval, np.float64))
    axes = tuple(range(x.ndim - 1))  # channels last
    m = int(np.prod([x.shape[a] for a in axes]))
    u = 2.0**-24
    gamma_m = m * u / (1 - m * u)
    mean, sd = x.mean(axis=axes), np.sqrt(x.var(axis=axes) + 1e-3)
    x_hat = (x - mean) / sd
    bound_gamma = (dout * (np.abs(x_hat) + np.abs(x) / sd)).sum(axis=axes)
    return {
        "dgamma": ATOL + 2 * gamma_m * bound_gamma,
        "dbeta": ATOL + 2 * gamma_m * dout.sum(axis=axes),
    }


def _cmp(prop, got, want, label, mistakes=(), hint=None, atol=ATOL):
    """None when `got` matches; else a verdict naming a known mistake, or (`hint`: a function
    of got and want) the property of the output or gradient that broke."""
    if close(got, want, atol, RTOL):
        return None
    detail = describe_difference(got, want, label)
    for name, alt, advice in mistakes:
        if alt is not None and close(got, alt, ATOL, RTOL):
            return Verdict(prop, False, f"{detail}. {advice}", name)
    extra = hint(got, want) if hint is not None else ""
    return Verdict(prop, False, detail + (extra or ""))


def judge(prop, case_list, pr: Probe, what="BatchNormalization"):
    early = framework_verdict(prop, pr, what, numpy=False) or error_verdict(prop, pr)
    if early:
        return early
    for case in case_list:
        k = case.name
        ref = reference(case, prop)
        if prop == "custom_gradient":
            hints = {
                "out": lambda g, w: output_property_hint(g, w, channel_axis=-1),
                "dx": lambda g, w, x=case.batches[0]: dx_property_hint(
                    g, w, x, 1e-3, channel_axis=-1
                ),
            }
            sums = _float32_sum_atol(case)
            for name in ("out", "dx", "dgamma", "dbeta"):
                failure = _cmp(
                    prop,
                    pr.arrays.get(f"{k}.{name}"),
                    ref[f"ref.{name}"],
                    f"batchnorm_custom_gradient {name} on {k}",
                    hint=hints.get(name),
                    atol=sums.get(name, ATOL),
                )
                if failure:
                    return failure
            continue
        if prop == "fit":
            for name in ("moving_mean", "moving_variance"):
                failure = _cmp(
                    prop,
                    pr.arrays.get(f"{k}.fit.{name}"),
                    ref[f"ref.fit.{name}"],
                    f"{name} after model.fit (2 epochs)",
                )
                if failure:
                    return failure
            continue
        if prop in ("train", "axis"):
            m = case.config.get("momentum", 0.99)
            inverted = reference(case, prop, momentum=1 - m)
            last_axis = reference(case, prop, axis=-1) if prop == "axis" else {}
            unbiased = _unbiased_series(case)
            for step in range(STEPS):
                checks = [
                    ("out", f"training=True output at step {step + 1}"),
                    ("moving_mean", f"moving_mean after step {step + 1}"),
                    ("moving_variance", f"moving_variance after step {step + 1}"),
                ]
                for name, label in checks:
                    key = f"train{step}.{name}"
                    mistakes = [
                        (
                            "wrong channel axis",
                            last_axis.get(f"ref.{key}"),
                            "Diagnosis: wrong channel axis. This layer was built with "
                            f"axis={case.config.get('axis')}: keep one statistic per entry of "
                            "that axis and reduce over all the others (Keras default -1 is "
                            "channels last; PyTorch's channels are axis 1).",
                        ),
                        (
                            "momentum convention inverted",
                            inverted.get(f"ref.{key}"),
                            "Diagnosis: momentum convention inverted. Keras' momentum weights the "
                            "OLD value: moving = momentum * moving + (1 - momentum) * batch.",
                        ),
                    ]
                    if name == "moving_variance":
                        mistakes.append(
                            (
                                "moving variance unbiased",
                                unbiased[step],
                                "Keras stores the BIASED batch variance in "
                                "moving_variance (PyTorch stores the unbiased one).",
                            )
                        )
                    axis = case.config.get("axis", -1)
                    failure = _cmp(
                        prop,
                        pr.arrays.get(f"{k}.{key}"),
                        ref[f"ref.{key}"],
                        f"{k}: {label}",
                        mistakes,
                        hint=(
                            (lambda g, w, a=axis: output_property_hint(g, w, channel_axis=a))
                            if name == "out"
                            else None
                        ),
                    )
                    if failure:
                        return failure
            continue
        if prop == "inference":
            for mode, label in (("false", "training=False"), ("omitted", "training omitted")):
                failure = _cmp(
                    prop,
                    pr.arrays.get(f"{k}.{mode}.out"),
                    ref[f"ref.{mode}.out"],
                    f"{k}: output with {label}",
                    [
                        (
                            "batch statistics in inference",
                            ref["ref.batchstats"],
                            f"Diagnosis: batch statistics in inference. With {label} "
                            "Keras normalizes with moving_mean and moving_variance "
                            "(training omitted means inference).",
                        )
                    ],
                )
                if failure:
                    return failure
            continue
        if prop == "weights":
            n = len(case.weights)
            got = [pr.arrays.get(f"{k}.weights.{i}") for i in range(n)]
            if f"{k}.weights.{n}" in pr.arrays or any(g is None for g in got):
                return Verdict(
                    prop,
                    False,
                    f"{k}: get_weights() must return exactly [gamma, "
                    "beta, moving_mean, moving_variance] (without gamma/beta when "
                    "scale/center is False), in Keras' order.",
                    "wrong weights",
                )
            for i, g in enumerate(got):
                failure = _cmp(prop, g, ref[f"ref.weights.{i}"], f"{k}: get_weights()[{i}]")
                if failure:
                    return failure
            continue
        raise KeyError(prop)
    messages = {
        "train": "training outputs and moving statistics equal keras.layers.BatchNormalization",
        "inference": "training=False and training omitted both use the moving statistics",
        "weights": "get_weights/set_weights interchangeable with keras.layers.BatchNormalization",
        "axis": "other channel axes (axis=1, axis=2) behave like Keras",
        "fit": "moving statistics after model.fit equal Keras'",
        "custom_gradient": "tf.custom_gradient output and gradients equal GradientTape on Keras",
    }
    return Verdict(prop, True, messages[prop])
