# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 8 — beyond BatchNorm: LayerNorm, GroupNorm, folding, Batch Renorm
#
# Read the chapter *Beyond batch normalization* first. BatchNorm's statistics come from the batch; here
# you write the normalizations whose statistics do not (LayerNorm, GroupNorm), the inference
# trick that makes BN free (folding it into the layer before it), and Batch Renormalization,
# which keeps BN's batch statistics but corrects them towards the running ones.
#
# Everything is NumPy. The tests compare your functions with `torch.nn.functional.layer_norm`,
# `torch.nn.GroupNorm`, torch.autograd, a real `nn.Linear`/`nn.Conv2d` followed by
# `nn.BatchNorm1d/2d` in eval mode, and the equations of Ioffe (2017).

# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false, "task": false}
# On Colab, or wherever this course's package `bnlab` is missing, install it first.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("bnlab") is None:
    BNLAB = "git+https://github.com/batchnorm-course/batchnorm-course"
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError(
            f'bnlab is not installed: pip install "bnlab[learner] @ {BNLAB}", then restart the kernel'
        )
    # Colab has numpy, matplotlib, torch and TensorFlow: add bnlab alone, changing none of them.
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", f"bnlab @ {BNLAB}"]
    subprocess.run(pip, check=True)
    importlib.invalidate_caches()

import numpy as np

from bnlab import checks
from bnlab.checks.beyond import conv2d
from bnlab.checks.gradcheck import numerical_gradient, rel_error

# %% [markdown]
# ## Layer normalization
#
# One mean and one variance per *sample*, over its D features: the result does not depend on
# the other samples of the batch, so training and inference compute the same thing.


# %% nbgrader={"grade": false, "grade_id": "layernorm_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Layer normalization of a fully connected layer (as torch.nn.functional.layer_norm).

    Parameters
    ----------
    x : ndarray, shape (N, D)
    gamma, beta : ndarray, shape (D,)
        Per-feature scale and shift (shared by all samples).
    eps : float
        Added to the variance inside the square root.

    Returns
    -------
    out : ndarray, shape (N, D)
        gamma * x_hat + beta, x_hat normalized with each sample's mean and *biased* variance
        over its features (axis 1).
    cache : any
        What your layernorm_backward needs.
    """
    ### BEGIN SOLUTION
    mu = x.mean(axis=1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=1, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    x_hat = xc * inv
    out = gamma * x_hat + beta
    return out, (x_hat, inv, gamma)
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "layernorm_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def layernorm_backward(dout, cache):
    """Backward pass of layernorm_forward.

    dout : ndarray, shape (N, D); cache: what layernorm_forward returned.
    Returns dx of shape (N, D) and dgamma, dbeta of shape (D,).

    Hint: it is BN's closed form with the roles of the axes exchanged: the statistics live on
    axis 1, but gamma and beta are still shared by the batch (sum their gradients on axis 0).
    """
    ### BEGIN SOLUTION
    x_hat, inv, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dx = inv * (
        dx_hat
        - dx_hat.mean(axis=1, keepdims=True)
        - x_hat * (dx_hat * x_hat).mean(axis=1, keepdims=True)
    )
    return dx, dgamma, dbeta
    ### END SOLUTION


# %% [markdown]
# Check your gradient numerically before the tests (relative errors below 1e-7).

# %%
rng = np.random.default_rng(0)
x = rng.normal(2.0, 3.0, size=(4, 6))
gamma, beta, dout = rng.normal(size=6), rng.normal(size=6), rng.normal(size=(4, 6))
_, cache = layernorm_forward(x, gamma, beta)
dx, dgamma, dbeta = layernorm_backward(dout, cache)
print(
    "dx     rel. error:",
    rel_error(dx, numerical_gradient(lambda v: layernorm_forward(v, gamma, beta)[0], x, dout)),
)
print(
    "dgamma rel. error:",
    rel_error(dgamma, numerical_gradient(lambda v: layernorm_forward(x, v, beta)[0], gamma, dout)),
)

# %% nbgrader={"grade": true, "grade_id": "test_ln_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("layernorm.forward", layernorm_forward)
### BEGIN HIDDEN TESTS
checks.check("layernorm.forward", layernorm_forward, seed=81)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_ln_backward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("layernorm.backward", layernorm_forward, layernorm_backward)
### BEGIN HIDDEN TESTS
checks.check("layernorm.backward", layernorm_forward, layernorm_backward, seed=82)
### END HIDDEN TESTS

# %% [markdown]
# ## Group normalization
#
# For a convolutional layer: the C channels of each sample are split into G groups of C // G
# consecutive channels, and each (sample, group) gets its own mean and variance over its
# C // G * H * W values. G = 1 is layer norm over (C, H, W); G = C is instance norm. The
# scale and shift stay per *channel*.


# %% nbgrader={"grade": false, "grade_id": "groupnorm_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def groupnorm_forward(x, gamma, beta, G, eps=1e-5):
    """Group normalization (as torch.nn.GroupNorm(G, C)).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    gamma, beta : ndarray, shape (C,)
        Per-channel scale and shift.
    G : int
        The number of groups; C % G == 0. Group g holds channels g*C//G ... (g+1)*C//G - 1.
    eps : float

    Returns
    -------
    out : ndarray, shape (N, C, H, W)
    cache : any

    Hint: x.reshape(N, G, -1) puts each group's values on the last axis.
    """
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    xg = x.reshape(n, G, -1)
    mu = xg.mean(axis=2, keepdims=True)
    xc = xg - mu
    var = (xc * xc).mean(axis=2, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    x_hat = (xc * inv).reshape(x.shape)
    out = gamma.reshape(1, c, 1, 1) * x_hat + beta.reshape(1, c, 1, 1)
    return out, (x_hat, inv, gamma, G)
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "groupnorm_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def groupnorm_backward(dout, cache):
    """Backward pass of groupnorm_forward.

    dout : ndarray, shape (N, C, H, W); cache: what groupnorm_forward returned.
    Returns dx of shape (N, C, H, W) and dgamma, dbeta of shape (C,).
    """
    ### BEGIN SOLUTION
    x_hat, inv, gamma, G = cache
    n, c, h, w = dout.shape
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3))
    dxh = (dout * gamma.reshape(1, c, 1, 1)).reshape(n, G, -1)
    xh = x_hat.reshape(n, G, -1)
    dx = inv * (
        dxh - dxh.mean(axis=2, keepdims=True) - xh * (dxh * xh).mean(axis=2, keepdims=True)
    )
    return dx.reshape(dout.shape), dgamma, dbeta
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_gn_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("groupnorm.forward", groupnorm_forward)
### BEGIN HIDDEN TESTS
checks.check("groupnorm.forward", groupnorm_forward, seed=83)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_gn_affine", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("groupnorm.affine", groupnorm_forward)
### BEGIN HIDDEN TESTS
checks.check("groupnorm.affine", groupnorm_forward, seed=84)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_gn_backward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("groupnorm.backward", groupnorm_forward, groupnorm_backward)
### BEGIN HIDDEN TESTS
checks.check("groupnorm.backward", groupnorm_forward, groupnorm_backward, seed=85)
### END HIDDEN TESTS

# %% [markdown]
# ## Folding BatchNorm into the layer before it
#
# In eval mode BN is a fixed affine map per channel,
# y = gamma * (z - running_mean) / sqrt(running_var + eps) + beta, so a dense or
# convolutional layer z = W x + b followed by BN is again one layer, with new weights and bias.
# Deployed networks do this once, after training: the BN costs nothing at inference.


# %% nbgrader={"grade": false, "grade_id": "fold_batchnorm", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fold_batchnorm(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    """Fold an eval-mode BatchNorm into the dense or convolutional layer that precedes it.

    Parameters
    ----------
    W : ndarray, shape (D_out, D_in) (dense) or (C_out, C_in, kh, kw) (convolution)
    b : ndarray, shape (D_out,), or None when the layer has no bias
    gamma, beta, running_mean, running_var : ndarray, shape (D_out,)
        The BN that follows the layer (BatchNorm1d/2d in eval mode).
    eps : float

    Returns
    -------
    W_folded : ndarray, the shape of W
    b_folded : ndarray, shape (D_out,) (always: BN's shift becomes a bias)

    The folded layer alone gives the same output as the layer followed by BN, for any input
    (padding included). Hint: BN scales each OUTPUT channel.
    """
    ### BEGIN SOLUTION
    scale = gamma / np.sqrt(running_var + eps)
    W_folded = W * scale.reshape(-1, *([1] * (W.ndim - 1)))
    b0 = np.zeros_like(running_mean) if b is None else b
    b_folded = (b0 - running_mean) * scale + beta
    return W_folded, b_folded
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_fold_dense", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("fold.dense", fold_batchnorm)
### BEGIN HIDDEN TESTS
checks.check("fold.dense", fold_batchnorm, seed=86)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_fold_conv", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("fold.conv", fold_batchnorm)
### BEGIN HIDDEN TESTS
checks.check("fold.conv", fold_batchnorm, seed=87)
### END HIDDEN TESTS

# %% [markdown]
# ### Experiment (not graded): a BN *after* a ReLU, folded into the NEXT convolution
#
# Many networks run conv -> ReLU -> BN -> conv. The BN cannot go into the first conv (the ReLU
# is in between), but it is still an affine map per channel, s * a + t, so it can go into the
# conv *after* it: scale that conv's INPUT channels by s and move t into its bias,
# b + sum over (i, kh, kw) of W[o, i, kh, kw] * t[i]. Run the cell and measure where the
# folded network differs from the original one.

# %%
rng = np.random.default_rng(8)
c_in, c_out, eps = 4, 6, 1e-5
a = np.maximum(rng.standard_normal((8, c_in, 10, 10)), 0).astype(np.float32)  # after the ReLU
bn_gamma, bn_beta = rng.uniform(0.5, 2.0, c_in), rng.normal(0.0, 1.0, c_in)
bn_mean, bn_var = rng.uniform(0.3, 0.6, c_in), rng.uniform(0.2, 0.5, c_in)
s = (bn_gamma / np.sqrt(bn_var + eps)).astype(np.float32)
t = (bn_beta - bn_mean * s).astype(np.float32)
W = (rng.standard_normal((c_out, c_in, 3, 3)) / 6).astype(np.float32)
b = np.zeros(c_out, np.float32)

original = conv2d(s.reshape(1, -1, 1, 1) * a + t.reshape(1, -1, 1, 1), W, b, padding=1)
folded = conv2d(a, W * s.reshape(1, -1, 1, 1), b + np.einsum("oikl,i->o", W, t), padding=1)

error = np.abs(folded - original)
border = np.ones(error.shape[2:], bool)
border[1:-1, 1:-1] = False
print(f"interior: largest error {error[:, :, ~border].max():.2g}")
print(f"border:   largest error {error[:, :, border].max():.2g}")

# %% [markdown]
# The interior agrees to float32 round-off; the border does not. Why? Zero padding pads the
# *BN's output* with zeros in the original network, while the folded conv pads its *input*,
# and BN maps an input of 0 to t, not 0. Questions: which of the 9 taps are affected at a
# corner, and by how much (compare the corner error with `np.einsum("oikl,i->o", W, t)`)?
# What padding value of `a` would make the fold exact? Why does folding into the conv
# *before* the BN (the graded exercise) never have this problem?

# %% [markdown]
# ## Batch Renormalization (Ioffe, 2017)
#
# Batch Renorm normalizes with the batch statistics, then corrects them towards the running
# ones, with sigma_B = sqrt(var_B + eps) (biased batch variance) and
# sigma = sqrt(running_var + eps):
#
# r = clip(sigma_B / sigma, 1 / r_max, r_max),   d = clip((mu_B - running_mean) / sigma, -d_max, d_max)
#
# x_hat = (x - mu_B) / sigma_B * r + d,   out = gamma * x_hat + beta.
#
# r and d are treated as constants by the gradient (stop_gradient in the paper). With
# r_max = 1 and d_max = 0 this is BN; with no clipping at all it is exactly the inference
# transform, (x - running_mean) / sigma. (Updating the running statistics is not part of this
# exercise.)


# %% nbgrader={"grade": false, "grade_id": "batchrenorm_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batchrenorm_forward(x, gamma, beta, running_mean, running_var, r_max, d_max, eps=1e-5):
    """Training-mode Batch Renormalization of a fully connected layer.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    gamma, beta, running_mean, running_var : ndarray, shape (D,)
    r_max : float, >= 1
    d_max : float, >= 0
    eps : float

    Returns
    -------
    out : ndarray, shape (N, D)
    r, d : ndarray, shape (D,)
        The corrections actually used (after clipping).
    """
    ### BEGIN SOLUTION
    mu = x.mean(axis=0)
    xc = x - mu
    sigma_b = np.sqrt((xc * xc).mean(axis=0) + eps)
    sigma = np.sqrt(running_var + eps)
    r = np.clip(sigma_b / sigma, 1.0 / r_max, r_max)
    d = np.clip((mu - running_mean) / sigma, -d_max, d_max)
    x_hat = xc / sigma_b * r + d
    return gamma * x_hat + beta, r, d
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_renorm_limits", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("renorm.limits", batchrenorm_forward)
### BEGIN HIDDEN TESTS
checks.check("renorm.limits", batchrenorm_forward, seed=88)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_renorm_clip", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("renorm.clip", batchrenorm_forward)
### BEGIN HIDDEN TESTS
checks.check("renorm.clip", batchrenorm_forward, seed=89)
### END HIDDEN TESTS

# %% [markdown]
# ### The gradient: r and d are constants
#
# The paper treats r and d as constants in the backward pass (stop_gradient): they are computed
# from the batch, but no gradient flows through them. With x_hat = (x - mu_B) / sigma_B,
#
# out = gamma * (x_hat * r + d) + beta,
#
# so dbeta = sum(dout, 0), dgamma = sum(dout * (x_hat * r + d), 0), and dx is BN's gradient
# scaled by r:
#
# dx = gamma * r / sigma_B * (dout - mean(dout, 0) - x_hat * mean(dout * x_hat, 0)).
#
# Why constants? Batch Renorm is meant to train like BN, and BN's gradient knows that shifting
# or scaling a feature over the whole batch does not change the normalized output: dx sums to
# zero over the batch (the path through mu_B) and is orthogonal to x_hat (the path through
# sigma_B). Differentiate through r = sigma_B / sigma instead, and the normalization by sigma_B
# cancels, x_hat * r = (x - mu_B) / sigma: the path through the batch variance drops out of dx.
# Differentiate through d = (mu_B - running_mean) / sigma as well, and the path through the
# batch mean goes too: what is left, gamma * dout / sigma, is the gradient of the inference
# transform, and training no longer sees the batch statistics at all. With r and d held
# constant the gradient keeps BN's structure while the forward pass uses the corrected output.
#
# Your function gets the r and d the forward used (the tests pass their own, so a mistake in
# batchrenorm_forward costs nothing here) and recomputes mu_B and sigma_B from x.


# %% nbgrader={"grade": false, "grade_id": "batchrenorm_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batchrenorm_backward(dout, x, gamma, r, d, eps=1e-5):
    """Backward pass of batchrenorm_forward in training mode, with r and d held constant.

    Parameters
    ----------
    dout : ndarray, shape (N, D)
        The gradient of the loss with respect to out.
    x : ndarray, shape (N, D)
        The forward's input.
    gamma : ndarray, shape (D,)
    r, d : ndarray, shape (D,)
        The corrections the forward used (after clipping): constants here.
    eps : float

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma, dbeta : ndarray, shape (D,)

    Recompute mu_B and sigma_B = sqrt(var_B + eps) (biased batch variance) from x.
    """
    ### BEGIN SOLUTION
    mu = x.mean(axis=0)
    xc = x - mu
    sigma_b = np.sqrt((xc * xc).mean(axis=0) + eps)
    x_hat = xc / sigma_b
    dbeta = dout.sum(axis=0)
    dgamma = (dout * (x_hat * r + d)).sum(axis=0)
    dx = gamma * r / sigma_b * (dout - dout.mean(axis=0) - x_hat * (dout * x_hat).mean(axis=0))
    return dx, dgamma, dbeta
    ### END SOLUTION


# %% [markdown]
# Check your gradient numerically. A numerical gradient of the forward with r and d frozen at
# their values is the gradient Batch Renorm uses: yours should match it (relative error below
# 1e-7). A numerical gradient through batchrenorm_forward itself differentiates r and d too
# (here unclipped): it is the inference transform's gamma * dout / sigma, not yours.

# %%
rng = np.random.default_rng(3)
x, dout = rng.normal(1.0, 2.0, size=(8, 3)), rng.normal(size=(8, 3))
gamma, beta = rng.uniform(0.5, 2.0, 3), rng.normal(size=3)
running_mean, running_var = rng.normal(size=3), rng.uniform(0.5, 2.0, 3)
_, r, d = batchrenorm_forward(x, gamma, beta, running_mean, running_var, 1e6, 1e6)


def frozen(v):  # r and d held at their values
    sigma_b = np.sqrt(v.var(axis=0) + 1e-5)
    return gamma * ((v - v.mean(axis=0)) / sigma_b * r + d) + beta


def through(v):  # r and d recomputed from v
    return batchrenorm_forward(v, gamma, beta, running_mean, running_var, 1e6, 1e6)[0]


dx = batchrenorm_backward(dout, x, gamma, r, d)[0]
dx_frozen = numerical_gradient(frozen, x.copy(), dout)
dx_through = numerical_gradient(through, x.copy(), dout)
inference = gamma * dout / np.sqrt(running_var + 1e-5)
print("yours vs r, d frozen:         rel. error", rel_error(dx, dx_frozen))
print("through r, d vs inference:    rel. error", rel_error(dx_through, inference))
print("yours vs through r, d:        rel. error", rel_error(dx, dx_through))

# %% nbgrader={"grade": true, "grade_id": "test_renorm_backward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("renorm.backward", batchrenorm_backward)
### BEGIN HIDDEN TESTS
checks.check("renorm.backward", batchrenorm_backward, seed=90)
### END HIDDEN TESTS
