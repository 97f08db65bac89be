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
# # Exercise 5a — BatchNorm in PyTorch, forward and backward by hand
#
# Read the chapter *Batch normalization in PyTorch and Keras* first, in particular its
# section *Writing your own layer*: it shows `torch.autograd.Function`, `ctx.save_for_backward`,
# `gradcheck`, `register_buffer` and the cumulative average of `momentum=None` on other
# operations. You write batch normalization as a `torch.autograd.Function` with its own
# backward pass, then wrap it in modules that can replace `torch.nn.BatchNorm1d` and
# `torch.nn.BatchNorm2d` anywhere — same constructor, parameters, buffers and `state_dict`.
# The classes and their methods are given; fill in the bodies. The tests compare your layers
# with PyTorch's on the same inputs, step by step; a layer that calls PyTorch's own batch norm
# earns nothing for the parts it fakes. Everything runs on a GPU when one is available.

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
import torch
from torch import nn

from bnlab import checks
from bnlab.core.frameworks import torch_device

device = torch_device()
print("device:", device)


# %% nbgrader={"grade": false, "grade_id": "BatchNormFunction", "locked": false, "schema_version": 3, "solution": true, "task": false}
class BatchNormFunction(torch.autograd.Function):
    """Training-mode batch normalization with a hand-written backward pass.

    Statistics over every dimension except 1 (the channels): (N, C), (N, C, L) and
    (N, C, H, W) inputs alike. Use tensor operations only (mean, var, rsqrt, sum, ...):
    no F.batch_norm, no torch.batch_norm, and no autograd inside backward.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        """x: (N, C, ...); weight, bias: (C,); returns gamma * x_hat + beta."""
        ### BEGIN SOLUTION
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        inv_std = torch.rsqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.dims = dims
        return x_hat * weight.view(shape) + bias.view(shape)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_out):
        """Returns (dx, dweight, dbias, None): one gradient per input of forward."""
        ### BEGIN SOLUTION
        x_hat, inv_std, weight = ctx.saved_tensors
        dims = ctx.dims
        shape = [1, -1] + [1] * (grad_out.dim() - 2)
        m = grad_out.numel() // grad_out.shape[1]
        dbias = grad_out.sum(dim=dims)
        dweight = (grad_out * x_hat).sum(dim=dims)
        dx = (
            weight.view(shape)
            * inv_std
            / m
            * (m * grad_out - dbias.view(shape) - x_hat * dweight.view(shape))
        )
        return dx, dweight, dbias, None
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_function", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
checks.check("torch.function", BatchNormFunction)
### BEGIN HIDDEN TESTS
checks.check("torch.function", BatchNormFunction, seed=41)
### END HIDDEN TESTS

# %% [markdown]
# ## Drop-in modules


# %% nbgrader={"grade": false, "grade_id": "modules", "locked": false, "schema_version": 3, "solution": true, "task": false}
class _BatchNorm(nn.Module):
    """What BatchNorm1d and BatchNorm2d share: drop-ins for torch.nn.BatchNorm1d/2d.

    The same constructor, parameters (weight, bias: (C,)), buffers (running_mean,
    running_var: (C,); num_batches_tracked: a 0-dim torch.long) and state_dict keys as
    PyTorch's layers. affine=False: weight and bias are None; track_running_stats=False:
    the three buffers are None and every mode normalizes with the batch statistics.
    """

    def __init__(
        self,
        num_features,
        eps=1e-5,
        momentum=0.1,
        affine=True,
        track_running_stats=True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        ### BEGIN SOLUTION
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer(
                "num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        ### END SOLUTION

    def _check_input_dim(self, x):
        """Raise ValueError for an input of the wrong rank (each subclass knows its own)."""
        raise NotImplementedError

    def forward(self, x):
        """x: (N, C, ...) -> same shape.

        Training mode (or track_running_stats=False): normalize with the batch statistics
        through BatchNormFunction, updating the running statistics when they are tracked.
        Eval mode: normalize with running_mean and running_var.
        """
        ### BEGIN SOLUTION
        self._check_input_dim(x)
        c = self.num_features
        shape = [1, -1] + [1] * (x.dim() - 2)
        weight = self.weight if self.affine else torch.ones(c, dtype=x.dtype, device=x.device)
        bias = self.bias if self.affine else torch.zeros(c, dtype=x.dtype, device=x.device)
        if self.training or not self.track_running_stats:
            if self.training and self.track_running_stats:
                self._update_running_stats(x)
            return BatchNormFunction.apply(x, weight, bias, self.eps)
        x_hat = (x - self.running_mean.view(shape)) * torch.rsqrt(
            self.running_var.view(shape) + self.eps
        )
        return x_hat * weight.view(shape) + bias.view(shape)
        ### END SOLUTION

    @torch.no_grad()
    def _update_running_stats(self, x):
        """One training step of the running statistics, in place.

        momentum weights the NEW batch; running_var stores the UNBIASED batch variance;
        momentum=None means a cumulative average (count the batches in num_batches_tracked).
        """
        ### BEGIN SOLUTION
        dims = [d for d in range(x.dim()) if d != 1]
        n = x.numel() // x.shape[1]
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False) * n / max(n - 1, 1)
        self.running_mean.mul_(1 - factor).add_(factor * mean)
        self.running_var.mul_(1 - factor).add_(factor * var)
        ### END SOLUTION


class BatchNorm1d(_BatchNorm):
    """Drop-in torch.nn.BatchNorm1d: inputs (N, C) or (N, C, L)."""

    def _check_input_dim(self, x):
        ### BEGIN SOLUTION
        if x.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {x.dim()}D input)")
        ### END SOLUTION


class BatchNorm2d(_BatchNorm):
    """Drop-in torch.nn.BatchNorm2d: inputs (N, C, H, W)."""

    def _check_input_dim(self, x):
        ### BEGIN SOLUTION
        if x.dim() != 4:
            raise ValueError(f"expected 4D input (got {x.dim()}D input)")
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_train", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("torch.train", BatchNorm1d, BatchNorm2d)
### BEGIN HIDDEN TESTS
checks.check("torch.train", BatchNorm1d, BatchNorm2d, seed=42)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_momentum_none", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("torch.momentum_none", BatchNorm1d, BatchNorm2d)
### BEGIN HIDDEN TESTS
checks.check("torch.momentum_none", BatchNorm1d, BatchNorm2d, seed=43)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_eval", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("torch.eval", BatchNorm1d, BatchNorm2d)
### BEGIN HIDDEN TESTS
checks.check("torch.eval", BatchNorm1d, BatchNorm2d, seed=44)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_state_dict", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("torch.state_dict", BatchNorm1d, BatchNorm2d)
### BEGIN HIDDEN TESTS
checks.check("torch.state_dict", BatchNorm1d, BatchNorm2d, seed=45)
### END HIDDEN TESTS

# %% [markdown]
# ## Your layer in a real network
#
# A small CNN on the 8x8 digits, trained three times with the same seed: with your
# `BatchNorm2d`/`BatchNorm1d`, with PyTorch's, and without normalization. Your curve should
# lie on top of PyTorch's.

# %%
from bnlab.book.data import load_digits  # noqa: E402
from bnlab.book.training import digits_cnn, train_classifier  # noqa: E402

data = load_digits()
curves = {}
for label, (bn2d, bn1d) in {
    "your BatchNorm": (BatchNorm2d, BatchNorm1d),
    "torch.nn.BatchNorm": (nn.BatchNorm2d, nn.BatchNorm1d),
    "no normalization": (None, None),
}.items():
    torch.manual_seed(0)
    model = digits_cnn(bn2d, bn1d).to(device)
    curves[label] = train_classifier(model, data, epochs=4, lr=0.05, device=device)
    print(f"{label:20s} test accuracy per epoch:", np.round(curves[label], 3))

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(5, 3))
for label, acc in curves.items():
    ax.plot(range(1, len(acc) + 1), acc, marker="o", label=label)
ax.set_xlabel("epoch")
ax.set_ylabel("test accuracy")
ax.legend()
plt.show()
