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
# # Exercise 10 — synchronized BatchNorm across processes
#
# Read the chapter *BatchNorm at scale: many devices, low precision, fused kernels* first, in
# particular its section on per-device statistics. With data parallelism every process (every
# GPU) sees only its slice of the global batch; a synchronized BatchNorm normalizes each slice
# with the statistics of the *whole* batch, as `torch.nn.SyncBatchNorm` does. You write one:
#
# * the forward pass all-reduces three things per channel, the **sum**, the **sum of
#   squares** and the **count** of the values each process holds, so that every process
#   computes the global mean and variance (slices may have different sizes).
#   `nn.SyncBatchNorm` gathers each process's mean, inverse standard deviation and count
#   instead and combines them weighted by the counts: the same statistics, other numbers on
#   the wire;
# * the backward pass all-reduces the two sums the BN gradient needs, **sum(dy)** and
#   **sum(dy * x_hat)**, over the global batch. The gradients of weight and bias stay
#   *local* sums, as in `nn.SyncBatchNorm`: `DistributedDataParallel` averages parameter
#   gradients across processes afterwards.
#
# The tests run your layer in a real process group: two processes (forked from this kernel)
# that talk through `torch.distributed` with the `gloo` backend over the loopback interface,
# each holding a slice of one global batch. They compare each process's outputs, gradients and
# running statistics with `torch.nn.BatchNorm1d/2d` run on the whole batch at once, which is
# what `nn.SyncBatchNorm` computes (it runs only on GPUs; on the CPU, this is its reference).
# Use `torch.distributed.all_reduce` (in place, `op=ReduceOp.SUM`), with `group=process_group`;
# no batch-norm function of PyTorch's. Write it device-agnostic: it must run unchanged on CUDA.

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
import torch.distributed as dist
from torch import nn

from bnlab import checks


# %% nbgrader={"grade": false, "grade_id": "SyncBatchNormFunction", "locked": false, "schema_version": 3, "solution": true, "task": false}
class SyncBatchNormFunction(torch.autograd.Function):
    """Training-mode batch normalization with statistics over the GLOBAL batch.

    x: this process's slice, (n, C) or (n, C, ...); the slices of the processes may differ
    in n. Statistics over every dimension except 1. Use tensor operations and
    dist.all_reduce(..., group=process_group) only: no F.batch_norm, no autograd in backward.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, process_group):
        """weight, bias: (C,). running_mean, running_var: (C,) buffers to update in place
        (with the GLOBAL mean and the UNBIASED GLOBAL variance, momentum weighting the new
        batch), or None. Returns weight * x_hat + bias, x_hat from the global statistics."""
        ### BEGIN SOLUTION
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.full((1,), x.numel() // x.shape[1], dtype=x.dtype, device=x.device)
        stats = torch.cat([x.sum(dim=dims), (x * x).sum(dim=dims), count])
        dist.all_reduce(stats, op=dist.ReduceOp.SUM, group=process_group)
        c = x.shape[1]
        total = stats[2 * c]
        mean = stats[:c] / total
        var = (stats[c : 2 * c] / total - mean * mean).clamp_min(0)
        if running_mean is not None:
            unbiased = var * total / (total - 1).clamp_min(1)
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * unbiased)
        inv_std = torch.rsqrt(var + eps)
        x_hat = (x - mean.view(shape)) * inv_std.view(shape)
        ctx.save_for_backward(x_hat, inv_std, weight, total)
        ctx.process_group = process_group
        return x_hat * weight.view(shape) + bias.view(shape)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_out):
        """One gradient per input of forward: (dx, dweight, dbias, None, None, None, None,
        None). dweight and dbias: sums over THIS process's slice only."""
        ### BEGIN SOLUTION
        x_hat, inv_std, weight, total = ctx.saved_tensors
        dims = [d for d in range(grad_out.dim()) if d != 1]
        shape = [1, -1] + [1] * (grad_out.dim() - 2)
        dbias = grad_out.sum(dim=dims)
        dweight = (grad_out * x_hat).sum(dim=dims)
        sums = torch.cat([dbias, dweight])
        dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=ctx.process_group)
        c = grad_out.shape[1]
        sum_dy, sum_dy_xhat = sums[:c].view(shape), sums[c:].view(shape)
        dx = (weight * inv_std).view(shape) * (grad_out - (sum_dy + x_hat * sum_dy_xhat) / total)
        return dx, dweight, dbias, None, None, None, None, None
        ### END SOLUTION


# %% [markdown]
# ## The module
#
# `SyncBatchNorm` has `torch.nn.SyncBatchNorm`'s constructor, parameters and buffers. In
# training mode it normalizes with the global statistics through `SyncBatchNormFunction`
# (updating the running statistics when it tracks them); in eval mode it uses the running
# statistics and talks to no other process.


# %% nbgrader={"grade": false, "grade_id": "SyncBatchNorm", "locked": false, "schema_version": 3, "solution": true, "task": false}
class SyncBatchNorm(nn.Module):
    """Drop-in for torch.nn.SyncBatchNorm: inputs (N, C) or (N, C, ...).

    momentum weights the new batch (None: cumulative average, counting the batches in
    num_batches_tracked); process_group=None means the default (WORLD) group.
    """

    def __init__(
        self,
        num_features,
        eps=1e-5,
        momentum=0.1,
        affine=True,
        track_running_stats=True,
        process_group=None,
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
        self.process_group = process_group
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

    def forward(self, x):
        """x: (N, C, ...) -> same shape."""
        ### BEGIN SOLUTION
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")
        c = self.num_features
        shape = [1, -1] + [1] * (x.dim() - 2)
        weight = self.weight if self.affine else torch.ones(c, dtype=x.dtype, device=x.device)
        bias = self.bias if self.affine else torch.zeros(c, dtype=x.dtype, device=x.device)
        if self.training or not self.track_running_stats:
            running_mean = running_var = None
            factor = 0.0
            if self.training and self.track_running_stats:
                self.num_batches_tracked.add_(1)
                running_mean, running_var = self.running_mean, self.running_var
                if self.momentum is None:
                    factor = 1.0 / float(self.num_batches_tracked)
                else:
                    factor = self.momentum
            return SyncBatchNormFunction.apply(
                x, weight, bias, running_mean, running_var, self.eps, factor, self.process_group
            )
        x_hat = (x - self.running_mean.view(shape)) * torch.rsqrt(
            self.running_var.view(shape) + self.eps
        )
        return x_hat * weight.view(shape) + bias.view(shape)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("sync.forward", SyncBatchNorm)
### BEGIN HIDDEN TESTS
checks.check("sync.forward", SyncBatchNorm, seed=51)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_backward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
checks.check("sync.backward", SyncBatchNorm)
### BEGIN HIDDEN TESTS
checks.check("sync.backward", SyncBatchNorm, seed=52)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_running", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("sync.running", SyncBatchNorm)
### BEGIN HIDDEN TESTS
checks.check("sync.running", SyncBatchNorm, seed=53)
### END HIDDEN TESTS

# %% [markdown]
# ## Your layer in two processes
#
# One global batch of 8 images, split 3 + 5 between two processes. With a plain per-process
# BatchNorm each process sees its own mean; with yours both see the global one.

# %%
from bnlab.checks.harness import Probe  # noqa: E402
from bnlab.checks.ranks import run_ranks  # noqa: E402

torch.manual_seed(0)
global_batch = torch.randn(8, 2, 4, 4, dtype=torch.float64) + torch.tensor([1.0, -2.0]).view(
    1, 2, 1, 1
)


def channel_means(layer_cls):
    def work(rank, world_size):
        part = global_batch[:3] if rank == 0 else global_batch[3:]
        layer = layer_cls(2).double()
        layer(part)
        return Probe({"running_mean": layer.running_mean.numpy().copy()})

    return [p.arrays.get("running_mean", p.errors) for p in run_ranks(work)]


print("global batch mean per channel:", global_batch.mean(dim=(0, 2, 3)).numpy().round(4))
for name, layer_cls in (("nn.BatchNorm2d", nn.BatchNorm2d), ("your SyncBatchNorm", SyncBatchNorm)):
    means = channel_means(layer_cls)
    print(f"{name:20s} running_mean / momentum, rank 0 and rank 1:")
    for rank, m in enumerate(means):
        print(f"  rank {rank}:", m if isinstance(m, dict) else np.round(m / 0.1, 4))
