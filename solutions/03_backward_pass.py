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
# # Exercise 3 — the BatchNorm backward pass
#
# Read the chapter *The backward pass* first. You derive the gradients of batch
# normalization twice — once node by node through the computational graph, once in closed
# form — and check both numerically before the graded tests compare them with
# `torch.autograd`.
#
# Start by pasting your `batchnorm_forward` from exercise 2. Its `cache` is yours to design:
# make it hold what your backward pass needs.

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
from bnlab.checks.gradcheck import numerical_gradient, rel_error


# %% nbgrader={"grade": false, "grade_id": "batchnorm_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training-mode batch normalization of a fully connected layer.

    Parameters
    ----------
    x : ndarray, shape (N, D)
        A mini-batch of N samples with D features.
    gamma : ndarray, shape (D,)
        Per-feature scale.
    beta : ndarray, shape (D,)
        Per-feature shift.
    eps : float
        Added to the variance inside the square root, for numerical stability.

    Returns
    -------
    out : ndarray, shape (N, D)
        gamma * x_hat + beta, where x_hat is x normalized with the batch mean and the
        *biased* batch variance of each feature.
    cache : any
        Whatever your backward pass will need later (for example x_hat and the variance).

    Hints: reduce over axis 0; keep the dtype of x; do not loop over samples; NumPy only
    (calls into torch or TensorFlow earn no points).
    """
    ### BEGIN SOLUTION
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc * xc).mean(axis=0)
    std = np.sqrt(var + eps)
    x_hat = xc / std
    out = gamma * x_hat + beta
    cache = (x_hat, xc, var, std, gamma, eps)
    return out, cache
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_forward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("forward.torch", batchnorm_forward)

# %% [markdown]
# ## The staged backward pass


# %% nbgrader={"grade": false, "grade_id": "batchnorm_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batchnorm_backward(dout, cache):
    """Backward pass of batch normalization, staged through the computational graph.

    Parameters
    ----------
    dout : ndarray, shape (N, D)
        Upstream gradient dL/dout.
    cache : what your batchnorm_forward returned.

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma, dbeta : ndarray, shape (D,)

    Walk the graph of the forward pass backwards, one node at a time: out -> x_hat ->
    (x - mu, var) -> mu -> x. Remember that mu and var depend on every sample.
    """
    ### BEGIN SOLUTION
    x_hat, xc, var, std, gamma, eps = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dvar = np.sum(dx_hat * xc, axis=0) * -0.5 * (var + eps) ** -1.5
    dmu = -np.sum(dx_hat, axis=0) / std + dvar * -2.0 * xc.mean(axis=0)
    dx = dx_hat / std + dvar * 2.0 * xc / n + dmu / n
    return dx, dgamma, dbeta
    ### END SOLUTION


# %% [markdown]
# Check your gradient numerically before the tests: the relative errors should be about
# 1e-7 or smaller (chapter 3, *The backward pass*, says why).

# %%
rng = np.random.default_rng(0)
x = rng.normal(2.0, 3.0, size=(6, 4))
gamma, beta, dout = rng.normal(size=4), rng.normal(size=4), rng.normal(size=(6, 4))
_, cache = batchnorm_forward(x, gamma, beta)
dx, dgamma, dbeta = batchnorm_backward(dout, cache)
print(
    "dx     rel. error:",
    rel_error(dx, numerical_gradient(lambda v: batchnorm_forward(v, gamma, beta)[0], x, dout)),
)
print(
    "dgamma rel. error:",
    rel_error(dgamma, numerical_gradient(lambda v: batchnorm_forward(x, v, beta)[0], gamma, dout)),
)
print(
    "dbeta  rel. error:",
    rel_error(dbeta, numerical_gradient(lambda v: batchnorm_forward(x, gamma, v)[0], beta, dout)),
)

# %% nbgrader={"grade": true, "grade_id": "test_dx", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
checks.check("backward.dx", batchnorm_forward, batchnorm_backward)
### BEGIN HIDDEN TESTS
checks.check("backward.dx", batchnorm_forward, batchnorm_backward, seed=21)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_dgamma", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("backward.dgamma", batchnorm_forward, batchnorm_backward)
### BEGIN HIDDEN TESTS
checks.check("backward.dgamma", batchnorm_forward, batchnorm_backward, seed=22)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_dbeta", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("backward.dbeta", batchnorm_forward, batchnorm_backward)
### BEGIN HIDDEN TESTS
checks.check("backward.dbeta", batchnorm_forward, batchnorm_backward, seed=23)
### END HIDDEN TESTS

# %% [markdown]
# ## The closed form


# %% nbgrader={"grade": false, "grade_id": "batchnorm_backward_fast", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batchnorm_backward_fast(dout, cache):
    """The same gradients from the simplified closed form of dx (chapter 3).

    Same inputs and outputs as batchnorm_backward; aim for a single expression for dx.
    """
    ### BEGIN SOLUTION
    x_hat, xc, var, std, gamma, eps = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma / (n * std) * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_fast", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("backward.fast", batchnorm_forward, batchnorm_backward_fast)
### BEGIN HIDDEN TESTS
checks.check("backward.fast", batchnorm_forward, batchnorm_backward_fast, seed=24)
### END HIDDEN TESTS

# %% [markdown]
# How much faster is the closed form? (Reported, never graded: a correct answer is correct
# at any speed.)

# %%
checks.report_speedup(batchnorm_forward, batchnorm_backward, batchnorm_backward_fast)

# %% [markdown]
# ## Convolutional layers
#
# Paste your `spatial_batchnorm_forward` from exercise 2, then write its backward pass.


# %% nbgrader={"grade": false, "grade_id": "spatial_batchnorm_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def spatial_batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training-mode batch normalization of a convolutional layer.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        A mini-batch of N samples with C channels of H x W feature maps.
    gamma, beta : ndarray, shape (C,)
        Per-channel scale and shift.
    eps : float

    Returns
    -------
    out : ndarray, shape (N, C, H, W)
    cache : any

    One mean and one (biased) variance per channel, over the batch and both spatial axes:
    axes (0, 2, 3). Hint: move the channel axis last and reuse batchnorm_forward.
    """
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    flat = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(flat, gamma, beta, eps)
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), (cache, x.shape)
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "spatial_batchnorm_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def spatial_batchnorm_backward(dout, cache):
    """Backward pass of spatial batch normalization.

    dout : ndarray, shape (N, C, H, W); cache: what spatial_batchnorm_forward returned.
    Returns dx of shape (N, C, H, W) and dgamma, dbeta of shape (C,).
    Hint: the same reshaping as the forward pass, around your dense backward.
    """
    ### BEGIN SOLUTION
    inner, (n, c, h, w) = cache
    flat = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_fast(flat, inner)
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_spatial", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("backward.spatial", spatial_batchnorm_forward, spatial_batchnorm_backward)
### BEGIN HIDDEN TESTS
checks.check("backward.spatial", spatial_batchnorm_forward, spatial_batchnorm_backward, seed=25)
### END HIDDEN TESTS
