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
# normalization for a fully connected layer in NumPy.
#
# For a mini-batch $x \in \mathbb{R}^{N \times D}$ and each feature $j$:
#
# $$\mu_j = \frac{1}{N}\sum_i x_{ij}, \qquad
#   \sigma_j^2 = \frac{1}{N}\sum_i (x_{ij} - \mu_j)^2, \qquad
#   \hat x_{ij} = \frac{x_{ij} - \mu_j}{\sqrt{\sigma_j^2 + \epsilon}}, \qquad
#   y_{ij} = \gamma_j \hat x_{ij} + \beta_j .$$
#
# The cells marked *tests* check your answer. The visible ones run here; the grader adds more
# (other shapes and seeds, and the real `torch` and `keras` layers as references).
# Do not rename the function or change its signature.

# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false, "task": false}
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

    Hints: reduce over axis 0; keep the dtype of x; do not loop over samples.
    """
    ### BEGIN SOLUTION
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc * xc).mean(axis=0)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = xc * inv_std
    out = gamma * x_hat + beta
    cache = (x_hat, gamma, inv_std)
    return out, cache
    ### END SOLUTION


# %% [markdown]
# ## Tests
#
# Run the cell below to try your function on a small batch before the graded tests.

# %%
x_demo = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
out_demo, _ = batchnorm_forward(x_demo, gamma=np.ones(2), beta=np.zeros(2))
print(np.round(out_demo, 4))

# %% nbgrader={"grade": true, "grade_id": "test_shape", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_forward_shape(batchnorm_forward)

# %% nbgrader={"grade": true, "grade_id": "test_normalizes", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_forward_normalizes(batchnorm_forward, seed=0)
### BEGIN HIDDEN TESTS
checks.check_forward_normalizes(batchnorm_forward, seed=11)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_affine", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_forward_affine(batchnorm_forward, seed=1)
### BEGIN HIDDEN TESTS
checks.check_forward_affine(batchnorm_forward, seed=12)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_torch", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_forward_torch(batchnorm_forward, seeds=(0,), shapes=((8, 3),))
### BEGIN HIDDEN TESTS
checks.check_forward_torch(batchnorm_forward, seeds=(3, 4), shapes=((2, 1), (5, 9), (64, 16)))
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_keras", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_forward_keras(batchnorm_forward, seeds=(0,), shapes=((8, 3),), eps=1e-3)
### BEGIN HIDDEN TESTS
checks.check_forward_keras(batchnorm_forward, seeds=(5,), shapes=((2, 3), (33, 4)), eps=1e-2)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_eps", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Hidden test: eps belongs inside the square root, and a constant feature must give beta.
### BEGIN HIDDEN TESTS
checks.check_forward_eps(batchnorm_forward, seed=2)
### END HIDDEN TESTS
