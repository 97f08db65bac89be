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
# # Exercise 2 — the BatchNorm forward pass
#
# Read the chapter *The forward pass* first. Here you implement training-mode batch
# normalization in NumPy, for a fully connected layer and then for a convolutional one.
#
# For a mini-batch $x \in \mathbb{R}^{N \times D}$ and each feature $j$:
#
# $$\mu_j = \frac{1}{N}\sum_i x_{ij}, \qquad
#   \sigma_j^2 = \frac{1}{N}\sum_i (x_{ij} - \mu_j)^2, \qquad
#   \hat x_{ij} = \frac{x_{ij} - \mu_j}{\sqrt{\sigma_j^2 + \epsilon}}, \qquad
#   y_{ij} = \gamma_j \hat x_{ij} + \beta_j .$$
#
# The cells marked *tests* check your answer; each is worth the points shown in its
# metadata, so a partly right answer earns partial credit. The visible tests run here, and
# when one fails it names the likely mistake. The grader adds more inputs (other shapes,
# seeds, float32, large means) and compares with the real `torch` and `keras` layers.
# Do not rename the functions or change their signatures.

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


# %% [markdown]
# Try your function on a small batch: each column of the output should have mean 0 and
# standard deviation 1.

# %%
x_demo = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
out_demo, _ = batchnorm_forward(x_demo, gamma=np.ones(2), beta=np.zeros(2))
print(np.round(out_demo, 4))
print("mean", out_demo.mean(axis=0), "std", out_demo.std(axis=0))

# %% [markdown]
# ## Tests for `batchnorm_forward`

# %% nbgrader={"grade": true, "grade_id": "test_shape", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("forward.shape", batchnorm_forward)
### BEGIN HIDDEN TESTS
checks.check("forward.shape", batchnorm_forward, seed=7)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_normalizes", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("forward.normalizes", batchnorm_forward)
### BEGIN HIDDEN TESTS
checks.check("forward.normalizes", batchnorm_forward, seed=11)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_affine", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("forward.affine", batchnorm_forward)
### BEGIN HIDDEN TESTS
checks.check("forward.affine", batchnorm_forward, seed=12)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_torch", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("forward.torch", batchnorm_forward)
### BEGIN HIDDEN TESTS
checks.check("forward.torch", batchnorm_forward, seed=13)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_keras", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("forward.keras", batchnorm_forward)
### BEGIN HIDDEN TESTS
checks.check("forward.keras", batchnorm_forward, seed=14)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_eps", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden test: eps inside the square root; a constant feature must give beta.
### BEGIN HIDDEN TESTS
checks.check("forward.eps", batchnorm_forward, seed=15)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_large_mean", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("forward.large_mean", batchnorm_forward)
### BEGIN HIDDEN TESTS
checks.check("forward.large_mean", batchnorm_forward, seed=16)
### END HIDDEN TESTS

# %% [markdown]
# ## Convolutional layers
#
# For activations of shape $(N, C, H, W)$, BN keeps one mean and variance per *channel*,
# taken over the batch and both spatial axes (chapter 2, *The forward pass*: the equation
# for the spatial case).


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


# %% nbgrader={"grade": true, "grade_id": "test_spatial", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("forward.spatial", spatial_batchnorm_forward)
### BEGIN HIDDEN TESTS
checks.check("forward.spatial", spatial_batchnorm_forward, seed=17)
### END HIDDEN TESTS
