"""Distributed workers for the chapter "BatchNorm at scale" (book/10_batchnorm_at_scale.md).

Two processes on the CPU talk through torch.distributed's gloo backend over the loopback
interface; they meet through a FileStore in a temporary folder, so no port is chosen and nothing
leaves the machine. The workers live here, not in the chapter, because `torch.multiprocessing`
starts each process fresh and must import the function it runs.

Synchronized BN here is *not* `nn.SyncBatchNorm`: that module refuses CPU tensors. It is the
forward statistics written with a differentiable all-reduce; autograd derives the backward.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from bnlab.core.frameworks import import_torch

torch = import_torch()
nn, F, dist = torch.nn, torch.nn.functional, torch.distributed

IFF_LOOPBACK = 0x8  # from <linux/if.h>
SGD_MOMENTUM = 0.9  # of the training experiment (`train_job`)
PROBE_CHANNELS = 64  # the all-reduce latency is measured for a BN layer of this many channels


def loopback_interface() -> str:
    """The name of the loopback network interface (`lo` on Linux), for GLOO_SOCKET_IFNAME."""
    net = Path("/sys/class/net")
    if net.is_dir():
        for flags in sorted(net.glob("*/flags")):
            with contextlib.suppress(OSError, ValueError):
                if int(flags.read_text().strip(), 16) & IFF_LOOPBACK:
                    return flags.parent.name
    import socket

    names = [name for _, name in socket.if_nameindex()]
    return next((n for n in names if n.startswith("lo")), "lo")


def run_distributed(job, world_size: int = 2, **kwargs) -> list:
    """Run `job(rank, world_size, **kwargs)` in `world_size` fresh processes joined by gloo;
    return what each rank's job returned, by rank. A failing rank raises here with its
    traceback; what the workers print goes to a log file, never to this process's output.
    `job` must be importable (defined in a module); from a script, call this under
    `if __name__ == "__main__":`, as for any spawned process."""
    with tempfile.TemporaryDirectory(prefix="bnlab-dist-") as tmp:
        folder = Path(tmp)
        try:
            torch.multiprocessing.spawn(
                _entry, args=(job, world_size, str(folder), kwargs), nprocs=world_size
            )
        except Exception as error:
            logs = "".join(p.read_text(errors="replace") for p in sorted(folder.glob("*.log")))
            raise RuntimeError(
                f"distributed job {job.__name__} failed:\n{logs[-4000:]}"
            ) from error
        return [
            pickle.loads((folder / f"rank{rank}.pkl").read_bytes()) for rank in range(world_size)
        ]


def _entry(rank, job, world_size, folder, kwargs):
    folder = Path(folder)
    log = open(folder / f"rank{rank}.log", "w")  # stays open until the process exits
    os.dup2(log.fileno(), 1)  # C++ and Python writes of this worker go to its log
    os.dup2(log.fileno(), 2)
    os.environ["GLOO_SOCKET_IFNAME"] = loopback_interface()
    torch.set_num_threads(1)  # two workers on a small machine: one thread each
    store = dist.FileStore(str(folder / "store"), world_size)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size)
    try:
        result = job(rank, world_size, **kwargs)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    (folder / f"rank{rank}.pkl").write_bytes(pickle.dumps(result))


# -- synchronized statistics ---------------------------------------------------------------------


def all_reduce_sum(tensor):
    """Sum `tensor` over all ranks, differentiably: the backward sums the gradients too."""
    with warnings.catch_warnings():
        # torch 2.13 marks this public function deprecated in favour of the private
        # torch.distributed._functional_collectives.all_reduce; it still works.
        warnings.simplefilter("ignore", FutureWarning)
        from torch.distributed.nn.functional import all_reduce

        return all_reduce(tensor)


def synced_moments(x):
    """Mean and biased variance per channel (dim 1) over the batch of *all* ranks.

    One all-reduce of 2C + 1 numbers: the per-channel sum, sum of squares and the count.
    Differentiable, so autograd derives the backward (whose all-reduce sums the gradients
    with respect to these 2C + 1 numbers). 16-bit inputs are summed in float32.
    """
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # 16-bit sums of squares overflow or lose the variance
    dims = [d for d in range(x.dim()) if d != 1]
    count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
    local = torch.cat([x.sum(dims), (x * x).sum(dims), count])
    total = all_reduce_sum(local)
    c = x.shape[1]
    n = total[2 * c]
    mean = total[:c] / n
    # One pass: fine for BN inputs whose mean is not large against their spread. Rounding
    # can still make it slightly negative when the variance is near zero: clamp.
    var = (total[c : 2 * c] / n - mean * mean).clamp_min(0)
    return mean, var, n


class SyncedBatchNorm(nn.Module):
    """BatchNorm over the batch of all ranks, for (N, C) or (N, C, ...) inputs on any device.

    Running statistics are updated with PyTorch's rule (exponential average with `momentum`,
    the unbiased variance stored); there is no `num_batches_tracked` and no cumulative
    average (`momentum=None`). 16-bit inputs are normalized in float32 and the output cast
    back to their type."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            mean, var, n = synced_moments(x)
            with torch.no_grad():
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean.dtype))
                unbiased = var * n / (n - 1)
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var.dtype))
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return (x_hat * self.weight.view(shape) + self.bias.view(shape)).to(x.dtype)


# -- the jobs ------------------------------------------------------------------------------------


def statistics_input(shape=(8, 3, 5, 5), seed=0):
    """The global batch of the statistics demonstration and an upstream gradient, float64;
    channel c has mean near -2 ... 2 and standard deviation 2."""
    gen = torch.Generator().manual_seed(seed)
    c = shape[1]
    shift = torch.linspace(-2.0, 2.0, c, dtype=torch.float64).view(1, c, 1, 1)
    full = torch.randn(shape, generator=gen, dtype=torch.float64) * 2.0 + shift
    grad_out = torch.randn(shape, generator=gen, dtype=torch.float64)
    return full, grad_out


def statistics_job(rank, world_size, shape=(8, 3, 5, 5), seed=0, timed_calls=200):
    """Per-rank statistics of a plain BatchNorm2d, synchronized ones, the output and gradients
    of the synchronized layer, what nn.SyncBatchNorm does on the CPU, and the latency of an
    all-reduce of 2C + 1 numbers (C = PROBE_CHANNELS): its quartiles over `timed_calls`."""
    full, grad_out = statistics_input(shape, seed)
    n, c = shape[0], shape[1]
    per_rank = n // world_size
    mine = slice(rank * per_rank, (rank + 1) * per_rank)
    local = full[mine].clone().requires_grad_()

    plain = nn.BatchNorm2d(c, momentum=1.0, dtype=torch.float64)  # running = this batch
    plain(local.detach())
    mean, var, count = synced_moments(local.detach())

    synced = SyncedBatchNorm(c).double()
    out = synced(local)
    (out * grad_out[mine]).sum().backward()
    weight_grad = synced.weight.grad.clone()
    # Summed: the gradient of the sum of the ranks' losses, the full-batch loss here. DDP
    # averages instead (it divides the sum by the world size), for a loss averaged over ranks.
    dist.all_reduce(weight_grad)

    try:
        layer = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(c)))
        layer(local.detach().float())
        sync_error = None
    except ValueError as error:
        sync_error = str(error)

    probe = torch.zeros(2 * PROBE_CHANNELS + 1)  # a BN layer's 2C + 1 numbers
    seconds = []
    for _ in range(timed_calls):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(probe)
        seconds.append(time.perf_counter() - start)
    return {
        "plain_mean": plain.running_mean.clone(),
        "synced_mean": mean,
        "synced_var": var,
        "count": float(count),
        "out": out.detach(),
        "x_grad": local.grad.clone(),
        "weight_grad": weight_grad,
        "sync_error": sync_error,
        "allreduce_s": statistics.median(seconds),
        "allreduce_quartiles_s": statistics.quantiles(seconds, n=4),  # [q1, median, q3]
        "allreduce_calls": timed_calls,
        "allreduce_numel": probe.numel(),
        "allreduce_channels": PROBE_CHANNELS,
    }


def train_job(rank, world_size, data, seed, synced, per_rank_batch, steps, lr=0.05):
    """Train the digits CNN with DistributedDataParallel on `data` (a `bnlab.book.data.Split`
    of images); each rank sees `per_rank_batch` images of a global batch. `synced`: BN
    statistics over the global batch, else over each rank's own. Returns the test accuracy
    (rank 0's model, eval mode) and the seconds per step."""
    from bnlab.book.training import digits_cnn

    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    torch.manual_seed(seed)
    bn = SyncedBatchNorm if synced else None
    model = digits_cnn(bn2d=bn or nn.BatchNorm2d, bn1d=bn or nn.BatchNorm1d)
    with warnings.catch_warnings():
        # Each rank keeps its own running statistics (rank 0's are evaluated). torch 2.13
        # calls the argument deprecated but recommends it for exactly this.
        warnings.simplefilter("ignore", FutureWarning)
        ddp = nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    opt = torch.optim.SGD(ddp.parameters(), lr=lr, momentum=SGD_MOMENTUM)
    gen = torch.Generator().manual_seed(seed)  # the same global batches on every rank
    torch.distributed.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (world_size * per_rank_batch,), generator=gen)
        idx = idx[rank * per_rank_batch : (rank + 1) * per_rank_batch]
        loss = F.cross_entropy(ddp(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = (time.perf_counter() - start) / steps
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(data.x_test)).argmax(1)
    accuracy = (pred == torch.from_numpy(data.y_test)).float().mean().item()
    return {"accuracy": accuracy, "seconds_per_step": seconds}


def chapter_job(rank, world_size, train_configs, data):
    """Everything the chapter runs on two ranks, in one pair of processes so that the start-up
    (a fresh Python importing torch) is paid once: the statistics, then `train_job` on `data`
    for each configuration (a dict of its other keyword arguments)."""
    return {
        "statistics": statistics_job(rank, world_size),
        "training": [train_job(rank, world_size, data, **config) for config in train_configs],
    }
