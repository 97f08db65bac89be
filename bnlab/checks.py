"""Checks that learners run in their notebooks, and that nbgrader's test cells call.

Each check exercises the learner's function on seeded inputs, compares it with a property or with a
real framework layer, prints one line when it passes and raises ``AssertionError`` with a hint when
it does not. Nothing here contains a solution.
"""

from __future__ import annotations

import numpy as np

from bnlab import references

# A correct float64 implementation agrees with torch to ~1e-15; these leave room for any valid
# formulation (np.var or two-pass, einsum, keepdims or not) at moderate means.
RTOL = 1e-6
ATOL = 1e-7


def _inputs(n, d, seed, mean=0.0, scale=1.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = (mean + scale * rng.standard_normal((n, d))).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, size=d).astype(dtype)
    beta = rng.standard_normal(d).astype(dtype)
    return x, gamma, beta


def _forward(batchnorm_forward, x, gamma, beta, eps):
    result = batchnorm_forward(x.copy(), gamma.copy(), beta.copy(), eps=eps)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise AssertionError(
            "batchnorm_forward must return a pair (out, cache); "
            f"it returned {type(result).__name__}. End the function with `return out, cache`."
        )
    out = np.asarray(result[0])
    if out.shape != x.shape:
        raise AssertionError(
            f"out has shape {out.shape}, expected {x.shape} (the same shape as x). "
            "Reduce over axis 0 only, and broadcast the statistics back over the batch."
        )
    if not np.all(np.isfinite(out)):
        raise AssertionError(
            "out contains NaN or inf. Is eps added inside the square root, sqrt(var + eps)?"
        )
    return out.astype(np.float64)


def _compare(what, got, want, rtol=RTOL, atol=ATOL):
    err = np.abs(got - want)
    bad = err > atol + rtol * np.abs(want)
    if bad.any():
        i, j = np.unravel_index(np.argmax(err), err.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} values differ; the largest difference is "
            f"{err.max():.3g} at sample {i}, feature {j} (got {got[i, j]:.6g}, expected "
            f"{want[i, j]:.6g})."
        )


def check_forward_shape(batchnorm_forward):
    """out has the shape of x for several batch shapes, including N=2 and D=1."""
    for n, d in [(4, 3), (2, 1), (16, 7)]:
        x, gamma, beta = _inputs(n, d, seed=n * 100 + d)
        _forward(batchnorm_forward, x, gamma, beta, 1e-5)
    print("ok: batchnorm_forward returns (out, cache) with out.shape == x.shape")


def check_forward_normalizes(batchnorm_forward, seed=0):
    """With gamma = 1 and beta = 0 every feature has mean 0 and (biased) variance 1."""
    x, _, _ = _inputs(32, 5, seed, mean=3.0, scale=4.0)
    d = x.shape[1]
    out = _forward(batchnorm_forward, x, np.ones(d), np.zeros(d), 1e-12)
    mean, var = out.mean(axis=0), out.var(axis=0)
    if not np.allclose(mean, 0.0, atol=1e-7):
        raise AssertionError(
            f"per-feature means of out are {np.round(mean, 4)}, expected 0. "
            "Subtract the mean of each feature over the batch (axis 0)."
        )
    if not np.allclose(var, 1.0, atol=1e-6):
        hint = ""
        if np.allclose(var, (x.shape[0] - 1) / x.shape[0], atol=1e-6):
            hint = " They equal (N-1)/N: you divided by the unbiased variance; BN uses 1/N."
        raise AssertionError(
            f"per-feature variances of out are {np.round(var, 4)}, expected 1.{hint}"
        )
    print("ok: with gamma=1, beta=0 each feature has mean 0 and variance 1")


def check_forward_affine(batchnorm_forward, seed=1):
    """gamma scales and beta shifts each normalized feature."""
    x, gamma, beta = _inputs(16, 4, seed)
    plain = _forward(batchnorm_forward, x, np.ones_like(gamma), np.zeros_like(beta), 1e-5)
    out = _forward(batchnorm_forward, x, gamma, beta, 1e-5)
    _compare("gamma * x_hat + beta", out, gamma * plain + beta)
    print("ok: out = gamma * x_hat + beta, per feature")


def check_forward_torch(batchnorm_forward, seeds=(0,), shapes=((8, 3),), eps=1e-5):
    """Agreement with ``torch.nn.functional.batch_norm`` and ``torch.nn.BatchNorm1d``."""
    for seed in seeds:
        for n, d in shapes:
            x, gamma, beta = _inputs(n, d, seed, mean=seed % 3, scale=1 + seed % 5)
            got = _forward(batchnorm_forward, x, gamma, beta, eps)
            _compare(
                f"torch.nn.functional.batch_norm on x of shape {(n, d)}",
                got,
                references.torch_batchnorm_train(x, gamma, beta, eps),
            )
            _compare(
                f"torch.nn.BatchNorm1d on x of shape {(n, d)}",
                got,
                references.torch_batchnorm1d_train(x, gamma, beta, eps),
            )
    print("ok: matches torch.nn.functional.batch_norm and torch.nn.BatchNorm1d (training mode)")


def check_forward_keras(batchnorm_forward, seeds=(0,), shapes=((8, 3),), eps=1e-3):
    """Agreement with ``keras.layers.BatchNormalization(epsilon=eps)``, training=True."""
    for seed in seeds:
        for n, d in shapes:
            x, gamma, beta = _inputs(n, d, seed)
            got = _forward(batchnorm_forward, x, gamma, beta, eps)
            _compare(
                f"keras BatchNormalization(epsilon={eps}) on x of shape {(n, d)}",
                got,
                references.keras_batchnorm_train(x, gamma, beta, eps),
            )
    print(f"ok: matches keras.layers.BatchNormalization(epsilon={eps}) with training=True")


def check_forward_eps(batchnorm_forward, seed=2):
    """eps sits inside the square root, and a constant feature maps to beta without NaN."""
    x, gamma, beta = _inputs(6, 3, seed)
    x[:, 1] = 7.0  # a constant feature: variance 0, only eps keeps the division finite
    for eps in (1e-5, 0.5, 4.0):
        got = _forward(batchnorm_forward, x, gamma, beta, eps)
        want = references.torch_batchnorm_train(x, gamma, beta, eps)
        try:
            _compare(f"eps={eps}", got, want)
        except AssertionError as err:
            raise AssertionError(
                f"{err} Use x_hat = (x - mean) / sqrt(var + eps): eps belongs inside the root."
            ) from None
    print("ok: eps is used inside the square root; a constant feature gives beta")
