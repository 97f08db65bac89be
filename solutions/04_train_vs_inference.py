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
# # Exercise 4 — training vs inference: a complete BatchNorm1d layer
#
# Read the chapter *Training mode and inference mode* first. You now build the whole layer
# as a NumPy class with the exact semantics of `torch.nn.BatchNorm1d`: parameters, running
# averages updated in training, a `train()`/`eval()` switch, and a backward pass. The tests
# run your layer and PyTorch's through the same script and compare every state.

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


# %% nbgrader={"grade": false, "grade_id": "BatchNorm1d", "locked": false, "schema_version": 3, "solution": true, "task": false}
class BatchNorm1d:
    """Batch normalization of a fully connected layer, with PyTorch's semantics, in NumPy.

    Parameters
    ----------
    num_features : int
        D, the number of features.
    eps : float
        Added to the variance inside the square root.
    momentum : float
        Weight of the NEW batch in the running averages (PyTorch's convention):
        running = (1 - momentum) * running + momentum * batch_statistic.

    Attributes
    ----------
    gamma, beta : ndarray, shape (D,)       start at ones and zeros
    running_mean, running_var : ndarray, shape (D,)   start at zeros and ones
    training : bool                          True after construction and train()
    dgamma, dbeta : ndarray, shape (D,)      set by backward()

    In training, forward normalizes with the batch statistics (biased variance) and
    updates the running averages; running_var stores the UNBIASED batch variance, as
    torch.nn.BatchNorm1d does. In eval mode it normalizes with the running statistics and
    updates nothing. backward(dout) follows the last training-mode forward and returns dx.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        ### BEGIN SOLUTION
        self.gamma = np.ones(num_features)
        self.beta = np.zeros(num_features)
        self.running_mean = np.zeros(num_features)
        self.running_var = np.ones(num_features)
        self.training = True
        self.dgamma = self.dbeta = self._cache = None
        ### END SOLUTION

    def train(self):
        ### BEGIN SOLUTION
        self.training = True
        return self
        ### END SOLUTION

    def eval(self):
        ### BEGIN SOLUTION
        self.training = False
        return self
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        if not self.training:
            x_hat = (x - self.running_mean) / np.sqrt(self.running_var + self.eps)
            return self.gamma * x_hat + self.beta
        n = x.shape[0]
        mu = x.mean(axis=0)
        xc = x - mu
        var = (xc * xc).mean(axis=0)
        m = self.momentum
        self.running_mean = (1 - m) * self.running_mean + m * mu
        self.running_var = (1 - m) * self.running_var + m * var * n / (n - 1)
        std = np.sqrt(var + self.eps)
        x_hat = xc / std
        self._cache = (x_hat, std)
        return self.gamma * x_hat + self.beta
        ### END SOLUTION

    def backward(self, dout):
        ### BEGIN SOLUTION
        x_hat, std = self._cache
        n = dout.shape[0]
        self.dbeta = dout.sum(axis=0)
        self.dgamma = (dout * x_hat).sum(axis=0)
        return self.gamma / (n * std) * (n * dout - self.dbeta - x_hat * self.dgamma)
        ### END SOLUTION


# %% [markdown]
# Try it: two training steps, then eval mode.

# %%
rng = np.random.default_rng(0)
layer = BatchNorm1d(3)
for _ in range(2):
    layer.forward(rng.normal(5.0, 2.0, size=(8, 3)))
print("running_mean", layer.running_mean, "running_var", layer.running_var)
layer.eval()
print("eval output", layer.forward(np.full((1, 3), 5.0)))

# %% [markdown]
# ## Tests

# %% nbgrader={"grade": true, "grade_id": "test_init", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("running.init", BatchNorm1d)
### BEGIN HIDDEN TESTS
checks.check("running.init", BatchNorm1d, seed=31)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_modes", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("running.modes", BatchNorm1d)
### BEGIN HIDDEN TESTS
checks.check("running.modes", BatchNorm1d, seed=32)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_running_mean", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("running.mean", BatchNorm1d)
### BEGIN HIDDEN TESTS
checks.check("running.mean", BatchNorm1d, seed=33)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_running_var", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("running.var", BatchNorm1d)
### BEGIN HIDDEN TESTS
checks.check("running.var", BatchNorm1d, seed=34)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_eval", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("running.eval", BatchNorm1d)
### BEGIN HIDDEN TESTS
checks.check("running.eval", BatchNorm1d, seed=35)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_backward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("running.backward", BatchNorm1d)
### BEGIN HIDDEN TESTS
checks.check("running.backward", BatchNorm1d, seed=36)
### END HIDDEN TESTS
