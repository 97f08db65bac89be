"""GPU check of the PyTorch exercises: correctness on CUDA, speed, synchronized BatchNorm.

One call on a CUDA machine records everything (issue 16) and stays within a time budget
(default: 420 s, then a hard stop 60 s later; a lent device runs one command for at most
600 s). What it does, in the order of the report:

1. Correctness: the layers of solutions/05_frameworks_torch.py against nn.BatchNorm1d/2d on
   the GPU (outputs, input gradients, running variance, eval mode).
2. Speed: forward, and forward+backward, of BatchNorm2d at N=64, C=256, 56x56 for four
   implementations (the 05 solution eager and torch.compile'd, nn.BatchNorm2d, and a BN from
   plain tensor operations compiled with torch.compile), in float32 and float16, NCHW and
   channels_last; effective memory bandwidth against the card's peak and a measured copy.
3. nn.SyncBatchNorm on the GPU: nccl with 2 processes on 2 GPUs when there are two, and gloo
   with 2 processes both on cuda:0 (does that work at all?), against nn.BatchNorm2d on the
   whole batch.
4. The exercise 10 solution's SyncBatchNorm (solutions/10_batchnorm_at_scale.py, if present)
   in 2 gloo processes on one device, global batch split 3 + 5, against nn.BatchNorm2d.

Appends the report (markdown) to bench/RESULTS.md, then exits with status 1 if a check
failed. --dry-run takes the same code paths on the CPU with tiny shapes and only prints the
report; the test suite runs it (tests/test_gpu_check.py).

    python bench/gpu_check.py             # on a CUDA machine (timeout >= 560 s)
    python bench/gpu_check.py --dry-run   # anywhere: the same code paths on the CPU

On this project's lent H200 (its own python3, with torch and triton but no jupytext; only $OUT
comes back): `PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --report $OUT/gpu_check.md`, then
append that file to bench/RESULTS.md here.

Choices, explained where they are made:
- float16 means half inputs, outputs and gradients with float32 parameters and running
  statistics: what a BN layer gets in a network under autocast (batch_norm is on none of
  autocast's cast lists, and cuDNN takes half data with float parameters). The layers are fed
  half tensors directly instead of running under torch.autocast, which would also cast the 05
  solution's rsqrt to float32 (rsqrt is on autocast's float32 list), changing what is timed.
  The 05 solution returns float32 for half inputs (half x_hat times float32 weight promotes);
  that costs it bandwidth, and is what the learner's code does.
- Bandwidth is *effective*: the bytes an ideal BN must move, divided by the time (see
  BYTES_MODEL); the copy bandwidth is the practical ceiling.
- The ranks of the SyncBatchNorm checks are spawned (CUDA cannot be used in a forked child
  once the parent has initialized it) and run `_sync_worker`, a module-level function: spawn
  re-imports this file as `__mp_main__`, whose top level only sets sys.path and imports.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bnlab.core.frameworks import import_torch  # noqa: E402

TORCH_SOLUTION = REPO / "solutions" / "05_frameworks_torch.py"
SYNC_SOLUTION = REPO / "solutions" / "10_batchnorm_at_scale.py"
RESULTS = REPO / "bench" / "RESULTS.md"

GPU_SHAPE = (64, 256, 56, 56)
DRY_SHAPE = (4, 8, 8, 8)
COPY_BYTES = {"cuda": 2**30, "cpu": 2**22}  # the copy benchmark's buffer (CUDA: >> any L2)

# Peak DRAM bandwidth in GB/s (1 GB = 1e9 bytes), NVIDIA's figures for the card, matched in this
# order (first match wins, case-insensitive) against torch.cuda.get_device_name(). Unlisted
# cards: "peak unknown". Checked against secondary spec pages (the vendor's data sheets could
# not be fetched from here): H200 4.8 TB/s, H100 SXM 3.35 TB/s, H100 PCIe ">2,000 GB/s" (its
# product brief), A100 80GB SXM 2,039 GB/s, A100 40GB 1,555 GB/s, V100 900 GB/s, T4 320 GB/s,
# L4 300 GB/s. From NVIDIA's data sheets as remembered, not re-checked here: A100 80GB PCIe
# 1,935 GB/s, V100S 1,134 GB/s.
PEAK_BANDWIDTH = (
    (r"\bH200\b", 4800.0, "H200, HBM3e"),
    (r"\bH100\b.*\bPCIe\b", 2000.0, "H100 PCIe, HBM2e"),
    (r"\bH100\b.*\b(SXM\d?|HBM3)\b", 3350.0, "H100 SXM, HBM3"),
    (r"\bA100\b.*80GB.*\bPCIe\b", 1935.0, "A100 80GB PCIe, HBM2e"),
    (r"\bA100\b.*80GB", 2039.0, "A100 80GB SXM, HBM2e"),
    (r"\bA100\b", 1555.0, "A100 40GB, HBM2"),
    (r"\bV100S\b", 1134.0, "V100S, HBM2"),
    (r"\bV100\b", 900.0, "V100, HBM2"),
    (r"\bT4\b", 320.0, "T4, GDDR6"),
    (r"\bL4\b", 300.0, "L4, GDDR6"),
)

# Bytes an ideal implementation moves, in passes over an N*C*H*W tensor of the input dtype
# (parameters and statistics, C values each, are negligible): forward reads x and writes y;
# forward+backward also reads x (or x_hat) and dy and writes dx.
BYTES_MODEL = {"forward": 2, "forward+backward": 5}
BYTES_NOTE = (
    "Effective bandwidth = ideal bytes / median time. Ideal bytes: the forward pass reads x and "
    "writes y once (2 passes over an N·C·H·W tensor of the input dtype); forward+backward also "
    "reads x and dy and writes dx (5 passes). A kernel whose x does not fit in the L2 cache{fit} "
    "must read x twice in the forward pass (statistics, then normalize) and x and dy twice in "
    "the backward pass: 3 + 5 = 8 passes, so its effective bandwidth is at most 2/3 (forward) "
    "and 5/8 (forward+backward) of what the memory delivers. Copy: `dst.copy_(src)` of a large "
    "buffer, reading and writing it once."
)

SOL_EAGER = "solution BatchNorm2d (eager)"
SOL_COMPILED = "solution BatchNorm2d, torch.compile"
TORCH_BN = "nn.BatchNorm2d"
PLAIN_COMPILED = "plain tensor ops, torch.compile"
VARIANTS = (SOL_EAGER, SOL_COMPILED, TORCH_BN, PLAIN_COMPILED)
LAYOUTS = ("NCHW", "channels_last")
# Largest |y - y_ref| and |dx - dx_ref| (values of order 1) tolerated before a timed variant is
# called wrong: a few units in the last place of the dtype at values up to ~5.
SPEED_TOLERANCE = {"float32": 1e-3, "float16": 5e-2}

# SyncBatchNorm checks: a global batch of 8 split unequally between 2 ranks, and a tolerance per
# dtype on max|a - b| / max(1, max|b|) for each compared tensor. float64: rounding only (~1e-15).
# float32 (TF32 off): unit roundoff 6e-8, statistics over 512 values per channel summed in a
# different order (two partial sums and an all-reduce against one reduction; E[x^2] - mean^2
# against Welford), through two convolutions and three BN layers: of order 1e-6 (measured on
# the CPU, 3 seeds, the exercise 10 solution and another correct layer: at most 2e-6); 1e-4
# leaves a margin of 50, while per-rank statistics (the bug to catch) are off by over 1e-1.
SYNC_SPLIT = (3, 5)
SYNC_CASES = (("float64", 1e-10), ("float32", 1e-4))
SYNC_SEED = 10
SKIPPED = "skipped: time budget spent"
FAILURE_MARKERS = ("MISMATCH", "FAILED", SKIPPED)  # a skipped step leaves the run incomplete


def log(message: str) -> None:
    """Progress, on stderr: stdout carries the report."""
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def short_error(err: BaseException) -> str:
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}"[:300]


def failed(lines: list[str]) -> bool:
    """Whether report lines record a failed check or an incomplete run (FAILURE_MARKERS)."""
    return any(marker in line for line in lines for marker in FAILURE_MARKERS)


# --- time guard --------------------------------------------------------------------------------


class TimeGuardExpired(Exception):
    """The hard time limit passed: the step that was running is abandoned."""


class TimeGuard:
    """A soft budget, checked before each step, and a hard limit enforced by SIGALRM.

    Steps started after the budget are skipped (and say so in the report); a step still running
    at the hard limit gets TimeGuardExpired raised into it, is recorded as failed, and the
    report is written all the same."""

    def __init__(self, budget_s: float, hard_grace_s: float = 60.0):
        self.start = time.monotonic()
        self.budget_s = budget_s
        self.hard_s = budget_s + hard_grace_s
        self._previous_handler = None

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def arm(self) -> None:
        """Start the hard limit (main thread only; counted from the guard's creation)."""
        if hasattr(signal, "setitimer"):
            self._previous_handler = signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, max(0.01, self.hard_s - self.elapsed()))

    def disarm(self) -> None:
        if hasattr(signal, "setitimer") and self._previous_handler is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous_handler)
            self._previous_handler = None

    def _expire(self, signum, frame) -> None:
        raise TimeGuardExpired(f"hard time limit of {self.hard_s:.0f} s reached")


# --- solutions ---------------------------------------------------------------------------------


CELL_START = re.compile(r"^# %%(?P<header>.*)$")


def solution_cells(path: Path) -> list[tuple[str, str]]:
    """(grade_id, source) of the `imports` cell and of the answer (nbgrader `solution`) code
    cells of a jupytext percent-format file, in order.

    A small reader of that format rather than jupytext, which the GPU machine's Python does not
    have: a cell starts at a line `# %%`, followed by `[markdown]` for a markdown cell and by the
    cell's metadata, `nbgrader={...}` in JSON among them. tests/test_gpu_check.py checks that it
    selects the same cells, with the same code, as jupytext."""
    cells: list[tuple[str, list[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        start = CELL_START.match(line)
        if start:
            cells.append((start.group("header").strip(), []))
        elif cells:  # lines before the first cell are the file's header
            cells[-1][1].append(line)
    selected = []
    for header, lines in cells:
        if header.startswith("[markdown]") or "nbgrader=" not in header:
            continue
        start = header.index("nbgrader=") + len("nbgrader=")
        meta, _ = json.JSONDecoder().raw_decode(header[start:])
        if meta.get("grade_id") == "imports" or meta.get("solution"):
            selected.append((meta.get("grade_id", ""), "\n".join(lines).strip("\n") + "\n"))
    return selected


def load_solution(path: Path) -> dict:
    """Execute a solution file's `imports` cell and its answer cells, in order, in a fresh
    namespace: the instructor's classes, as a learner's notebook defines them."""
    ns: dict = {"__name__": f"solution_{path.stem}"}
    for grade_id, source in solution_cells(path):
        exec(compile(source, f"<solution:{grade_id}>", "exec"), ns)
    return ns


def solution_layers() -> dict:
    """The instructor's solution classes, executed from solutions/05_frameworks_torch.py."""
    return load_solution(TORCH_SOLUTION)


# --- 1. correctness ----------------------------------------------------------------------------


def correctness_on(device, ns) -> list[str]:
    """The torch checks' comparisons, with both layers moved to `device`."""
    torch = import_torch()
    lines = []
    for cls_name, ref_cls, shape in (
        ("BatchNorm2d", torch.nn.BatchNorm2d, (8, 16, 12, 12)),
        ("BatchNorm1d", torch.nn.BatchNorm1d, (32, 16)),
    ):
        torch.manual_seed(0)
        mine = ns[cls_name](shape[1]).to(device)
        ref = ref_cls(shape[1]).to(device)
        worst = 0.0
        for _ in range(3):
            x = (torch.randn(*shape, device=device) * 3 + 1).requires_grad_()
            x2 = x.detach().clone().requires_grad_()
            out, out2 = mine(x), ref(x2)
            g = torch.randn_like(out)
            out.backward(g)
            out2.backward(g)
            worst = max(
                worst,
                (out - out2).abs().max().item(),
                (x.grad - x2.grad).abs().max().item(),
                (mine.running_var - ref.running_var).abs().max().item(),
            )
        mine.eval()
        ref.eval()
        x = torch.randn(*shape, device=device)
        worst = max(worst, (mine(x) - ref(x)).abs().max().item())
        status = "ok" if worst < 1e-4 else "MISMATCH"
        lines.append(f"{cls_name} on {device}: max |difference| to torch {worst:.2e} ({status})")
    return lines


# --- 2. speed ----------------------------------------------------------------------------------


def peak_bandwidth(card: str) -> tuple[float | None, str]:
    """(GB/s, which entry) for a device name, or (None, "peak unknown")."""
    for pattern, gbps, what in PEAK_BANDWIDTH:
        if re.search(pattern, card, re.IGNORECASE):
            return gbps, what
    return None, "peak unknown"


def make_plain_batch_norm():
    """Training-mode BatchNorm2d from plain tensor operations, to be compiled.

    Statistics in float32 whatever the input dtype, running statistics updated in place
    (unbiased variance, momentum weighting the new batch), output in the input's dtype. The
    backward pass is what autograd derives (AOTAutograd under torch.compile)."""
    torch = import_torch()

    def plain_batch_norm(x, weight, bias, running_mean, running_var, momentum: float, eps: float):
        xf = x.float()
        var, mean = torch.var_mean(xf, dim=(0, 2, 3), correction=0)
        n = x.numel() // x.shape[1]
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(var * (n / max(n - 1, 1)), alpha=momentum)
        scale = weight * torch.rsqrt(var + eps)
        shift = bias - mean * scale
        return (xf * scale[None, :, None, None] + shift[None, :, None, None]).to(x.dtype)

    return plain_batch_norm


def build_variant(name: str, ns: dict, channels: int, device, backend: str):
    """(callable x -> y, trainable tensors) for one timed implementation."""
    torch = import_torch()
    if name in (SOL_EAGER, SOL_COMPILED):
        module = ns["BatchNorm2d"](channels).to(device)
        fn = module if name == SOL_EAGER else torch.compile(module, backend=backend)
        return fn, list(module.parameters())
    if name == TORCH_BN:
        module = torch.nn.BatchNorm2d(channels).to(device)
        return module, list(module.parameters())
    if name == PLAIN_COMPILED:
        weight = torch.ones(channels, device=device, requires_grad=True)
        bias = torch.zeros(channels, device=device, requires_grad=True)
        running_mean = torch.zeros(channels, device=device)
        running_var = torch.ones(channels, device=device)
        compiled = torch.compile(make_plain_batch_norm(), backend=backend)

        def fn(x):
            return compiled(x, weight, bias, running_mean, running_var, 0.1, 1e-5)

        return fn, [weight, bias]
    raise ValueError(f"unknown variant {name!r}")


def synchronize(device) -> None:
    if device.type == "cuda":
        import_torch().cuda.synchronize(device)


def median_ms(call: Callable[[], object], device, warmup: int, repeat: int) -> float:
    """Median time of one call in ms, over `repeat` calls after `warmup` untimed ones.

    CUDA: an event pair around each call, no synchronization between calls (so a call that
    launches kernels more slowly than the GPU runs them is charged the idle gaps); CPU:
    perf_counter around each call."""
    torch = import_torch()
    for _ in range(warmup):
        call()
    synchronize(device)
    if device.type == "cuda":
        events = []
        for _ in range(repeat):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            events.append((start, end))
        torch.cuda.synchronize(device)
        times = [start.elapsed_time(end) for start, end in events]
    else:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            call()
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def copy_bandwidth(device, warmup: int, repeat: int) -> tuple[float, int]:
    """(GB/s, buffer bytes) of dst.copy_(src): the practical ceiling of a streaming kernel."""
    torch = import_torch()
    nbytes = COPY_BYTES[device.type]
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), device, warmup, repeat)
    return 2 * nbytes / (ms * 1e-3) / 1e9, nbytes


def graph_breaks() -> int:
    from torch._dynamo.utils import counters

    return sum(counters["graph_break"].values())


def kernels_of(call: Callable[[], object], device) -> str:
    """Which implementation PyTorch picked for nn.BatchNorm2d, from one profiled call."""
    profiler = import_torch().profiler
    activities = [profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(profiler.ProfilerActivity.CUDA)
    with profiler.profile(activities=activities) as prof:
        call()
        synchronize(device)
    names = " ".join(event.key for event in prof.key_averages()).lower()
    if "cudnn" in names:
        return "cuDNN"
    if "batch_norm" in names:
        return f"native {device.type.upper()} kernels"
    return "kernels unknown"


@dataclass
class SpeedRow:
    layer: str
    dtype: str
    layout: str
    runs_as: str = ""
    first_s: float | None = None
    fwd_ms: float | None = None
    fb_ms: float | None = None
    diff_y: float | None = None
    diff_dx: float | None = None
    error: str = ""


def backend_for(device, dtype_name: str, layout: str) -> str:
    """torch.compile's backend: inductor on CUDA. On the CPU (dry run) inductor for float32
    NCHW only, aot_eager (the same Dynamo and AOTAutograd path, without C++ code generation)
    for the other cases, to stay within the dry run's time."""
    if device.type == "cuda" or (dtype_name == "float32" and layout == "NCHW"):
        return "inductor"
    return "aot_eager"


def time_variant(row: SpeedRow, ns, x, dy, y_ref, dx_ref, device, backend, warmup, repeat):
    """Fill `row`: first call (compilation included), diffs to nn.BatchNorm2d, median times."""
    torch = import_torch()
    torch._dynamo.reset()  # every compiled case starts from scratch, with its own backend
    fn, params = build_variant(row.layer, ns, x.shape[1], device, backend)
    inputs = [x, *params]
    breaks = graph_breaks()
    t0 = time.perf_counter()
    y = fn(x)
    grads = torch.autograd.grad(y, inputs, dy)
    synchronize(device)
    row.first_s = time.perf_counter() - t0
    row.diff_y = (y.float() - y_ref.float()).abs().max().item()
    row.diff_dx = (grads[0].float() - dx_ref.float()).abs().max().item()
    del y, grads
    if row.layer in (SOL_COMPILED, PLAIN_COMPILED):
        row.runs_as = f"{backend}, {graph_breaks() - breaks} graph breaks"
    elif row.layer == SOL_EAGER:
        row.runs_as = "eager, autograd.Function"
    row.fwd_ms = median_ms(lambda: fn(x), device, warmup, repeat)
    row.fb_ms = median_ms(lambda: torch.autograd.grad(fn(x), inputs, dy), device, warmup, repeat)
    if row.layer == TORCH_BN:
        try:
            row.runs_as = kernels_of(lambda: torch.autograd.grad(fn(x), inputs, dy), device)
        except Exception as err:  # noqa: BLE001 - the profiler is optional information
            row.runs_as = f"kernels unknown ({short_error(err)[:60]})"


def speed_rows(ns, device, shape, dtype_names, guard, warmup, repeat) -> list[SpeedRow]:
    torch = import_torch()
    rows = []
    for dtype_name in dtype_names:
        dtype = getattr(torch, dtype_name)
        for layout in LAYOUTS:
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            if guard.left() <= 0:
                rows += [SpeedRow(v, dtype_name, layout, error=SKIPPED) for v in VARIANTS]
                continue
            log(f"timing {dtype_name} {layout}")
            torch.manual_seed(0)
            x = torch.randn(shape, device=device).to(dtype).contiguous(memory_format=fmt)
            x.requires_grad_()
            dy = torch.randn(shape, device=device).to(dtype).contiguous(memory_format=fmt)
            reference = torch.nn.BatchNorm2d(shape[1]).to(device)
            y_ref = reference(x)
            dx_ref = torch.autograd.grad(y_ref, x, dy)[0]
            y_ref = y_ref.detach()
            for variant in VARIANTS:
                row = SpeedRow(variant, dtype_name, layout)
                rows.append(row)
                if guard.left() <= 0:
                    row.error = SKIPPED
                    continue
                try:
                    backend = backend_for(device, dtype_name, layout)
                    time_variant(row, ns, x, dy, y_ref, dx_ref, device, backend, warmup, repeat)
                except Exception as err:  # noqa: BLE001 - recorded in the report, run goes on
                    row.error = f"FAILED: {short_error(err)}"
                    log(f"{variant} {dtype_name} {layout}: {row.error}")
            del x, dy, y_ref, dx_ref, reference
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def bandwidth_cell(nbytes: float, ms: float | None, peak: float | None, copy_gbps: float) -> str:
    if ms is None:
        return "—"
    gbps = nbytes / (ms * 1e-3) / 1e9
    of_peak = f"{100 * gbps / peak:.0f} %" if peak else "—"
    shown = f"{gbps:.0f}" if gbps >= 10 else f"{gbps:.2f}"
    return f"{shown} ({of_peak}, {100 * gbps / copy_gbps:.0f} %)"


def speed_table(rows: list[SpeedRow], shape, peak, copy_gbps) -> list[str]:
    numel = 1
    for n in shape:
        numel *= n
    size = {"float32": 4, "float16": 2}
    table = [
        "| layer | dtype | layout | runs as | forward (ms) | fwd+bwd (ms) "
        "| forward GB/s (% of peak, % of copy) | fwd+bwd GB/s (% of peak, % of copy) "
        "| first call (s) | max abs diff y / dx vs nn.BatchNorm2d |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.fb_ms is None:
            cells = [r.layer, r.dtype, r.layout, r.runs_as or "—", "—", "—", "—", "—", "—"]
            table.append("| " + " | ".join([*cells, r.error]) + " |")
            continue
        tol = SPEED_TOLERANCE[r.dtype]
        worst = max(r.diff_y, r.diff_dx)
        flag = "" if worst <= tol else f" (MISMATCH, tolerance {tol:g})"
        fwd_bytes = BYTES_MODEL["forward"] * numel * size[r.dtype]
        fb_bytes = BYTES_MODEL["forward+backward"] * numel * size[r.dtype]
        table.append(
            f"| {r.layer} | {r.dtype} | {r.layout} | {r.runs_as} | {r.fwd_ms:.3f} "
            f"| {r.fb_ms:.3f} | {bandwidth_cell(fwd_bytes, r.fwd_ms, peak, copy_gbps)} "
            f"| {bandwidth_cell(fb_bytes, r.fb_ms, peak, copy_gbps)} | {r.first_s:.2f} "
            f"| {r.diff_y:.1e} / {r.diff_dx:.1e}{flag} |"
        )
    return table


def speed_section(ns, device, shape, dtype_names, guard, warmup, repeat) -> list[str]:
    torch = import_torch()
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak, peak_what = peak_bandwidth(card)
    copy_gbps, copy_bytes = copy_bandwidth(device, warmup, repeat)
    rows = speed_rows(ns, device, shape, dtype_names, guard, warmup, repeat)
    peak_text = f"{peak:.0f} GB/s ({peak_what})" if peak else "peak unknown"
    fit = ""
    if device.type == "cuda":
        l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0)
        numel = shape[0] * shape[1] * shape[2] * shape[3]
        fit = f" (here x is {4 * numel / 1e6:.0f} MB in float32, the L2 cache {l2 / 1e6:.0f} MB)"
    copy_of_peak = f", {100 * copy_gbps / peak:.0f} % of peak" if peak else ""
    timing = (
        "CUDA events around each call, no synchronization between calls"
        if device.type == "cuda"
        else "perf_counter around each call"
    )
    return [
        f"Input {tuple(shape)}; median of {repeat} timed calls after {warmup} warm-up calls "
        f"({timing}); training mode, every layer updating its running statistics; "
        "fwd+bwd = forward, then torch.autograd.grad for x, weight and bias (no gradient "
        "accumulation). float16: half x, y, dy, dx (the 05 solution returns a float32 y); "
        "float32 parameters and statistics.",
        "",
        f"- Peak bandwidth: {peak_text}.",
        f"- Copy bandwidth: {copy_gbps:.0f} GB/s (`dst.copy_(src)`, {copy_bytes / 2**20:.0f} "
        f"MiB read + written{copy_of_peak}).",
        f"- {BYTES_NOTE.format(fit=fit)}",
        "- first call: the first forward+backward, compilation included.",
        "",
        *speed_table(rows, shape, peak, copy_gbps),
    ]


# --- 3 and 4. SyncBatchNorm in 2 processes -----------------------------------------------------


def loopback_name() -> str | None:
    names = [name for _, name in socket.if_nameindex()]
    return next((n for n in ("lo", "lo0") if n in names), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_model(torch):
    """BN on the input itself (the layer alone), then conv-BN-ReLU-conv-BN; affine parameters
    away from 1 and 0, so that a layer that mishandles them shows. The convolutions have no
    bias: before a BN layer its gradient is zero but for rounding, which in float32 (sums of
    terms of order 100) is no smaller than the tolerance, and it tells nothing."""
    nn = torch.nn
    model = nn.Sequential(
        nn.BatchNorm2d(3),
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
    )
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model


def sync_converter(torch, layer: str):
    """model -> model with its BatchNorm2d layers replaced by synchronized ones: PyTorch's
    (`layer` == "torch") or the SyncBatchNorm class of the solution file at path `layer`."""
    if layer == "torch":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm
    solution_cls = load_solution(Path(layer))["SyncBatchNorm"]

    def convert(module):
        for name, child in module.named_children():
            if isinstance(child, torch.nn.BatchNorm2d):
                synced = solution_cls(
                    child.num_features,
                    eps=child.eps,
                    momentum=child.momentum,
                    affine=child.affine,
                    track_running_stats=child.track_running_stats,
                )
                synced.load_state_dict(child.state_dict())
                setattr(module, name, synced)
            else:
                convert(child)
        return module

    return convert


def relative_difference(a, b) -> float:
    """max |a - b| / max(1, max |b|), in float64: relative for tensors of magnitude above 1,
    absolute below (some gradients are zero up to rounding, e.g. a bias before a BN layer)."""
    a, b = a.detach().double(), b.detach().double()
    return (a - b).abs().max().item() / max(b.abs().max().item(), 1.0)


def sync_case(torch, dist, rank: int, device, dtype, convert, split, seed) -> dict:
    """One training step of the synchronized model on this rank's slice against nn.BatchNorm2d
    on the whole batch (computed on every rank), then an eval-mode forward.

    Parameter gradients stay local sums in nn.SyncBatchNorm (DistributedDataParallel reduces
    them), so they are summed over the ranks before the comparison."""
    torch.manual_seed(seed)
    base = small_model(torch)
    reference = copy.deepcopy(base).to(device=device, dtype=dtype)
    synced = convert(copy.deepcopy(base)).to(device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(seed + 1)
    total = sum(split)
    x_full = torch.randn(total, 3, 8, 8, generator=gen, dtype=torch.float64) * 2 + 0.5
    g_full = torch.randn(total, 4, 8, 8, generator=gen, dtype=torch.float64)
    x_full, g_full = x_full.to(device, dtype), g_full.to(device, dtype)
    lo = sum(split[:rank])
    hi = lo + split[rank]

    x_ref = x_full.clone().requires_grad_()
    y_ref = reference(x_ref)
    y_ref.backward(g_full)
    x = x_full[lo:hi].clone().requires_grad_()
    y = synced(x)
    y.backward(g_full[lo:hi])
    diffs = {
        "output": relative_difference(y, y_ref[lo:hi]),
        "input grad": relative_difference(x.grad, x_ref.grad[lo:hi]),
    }

    ref_params = dict(reference.named_parameters())
    own_params = dict(synced.named_parameters())
    if ref_params.keys() != own_params.keys():
        raise ValueError(f"parameters {sorted(own_params)} differ from {sorted(ref_params)}")
    worst = 0.0
    for name, param in own_params.items():
        # No gradient counts as zero (a mismatch), and keeps the ranks' all-reduces in step.
        grad = torch.zeros_like(param) if param.grad is None else param.grad.detach().clone()
        dist.all_reduce(grad)
        worst = max(worst, relative_difference(grad, ref_params[name].grad))
    diffs["parameter grads summed over ranks"] = worst

    ref_buffers = dict(reference.named_buffers())
    own_buffers = dict(synced.named_buffers())
    if ref_buffers.keys() != own_buffers.keys():
        raise ValueError(f"buffers {sorted(own_buffers)} differ from {sorted(ref_buffers)}")
    worst = 0.0
    for name, buffer in own_buffers.items():
        if buffer.is_floating_point():
            worst = max(worst, relative_difference(buffer, ref_buffers[name]))
        elif not torch.equal(buffer.cpu(), ref_buffers[name].cpu()):
            worst = float("inf")
    diffs["running statistics"] = worst

    synced.eval()
    reference.eval()
    with torch.no_grad():
        diffs["eval output"] = relative_difference(synced(x_full[lo:hi]), reference(x_full)[lo:hi])
    return diffs


def full_precision(torch) -> None:
    """No TF32 in convolutions and matmuls: the float32 comparisons are of float32 arithmetic."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    # Checked, not tried: an unknown attribute set on torch.backends.cudnn would be ignored.
    if hasattr(cudnn, "fp32_precision") and hasattr(matmul, "fp32_precision"):
        cudnn.fp32_precision = "ieee"  # conv and rnn (torch >= 2.9; not mixed with the below)
        matmul.fp32_precision = "ieee"
    else:
        cudnn.allow_tf32 = False
        matmul.allow_tf32 = False


def _sync_worker(rank: int, world_size: int, spec: dict) -> None:
    """One rank of a SyncBatchNorm check (module level: spawn pickles it by name).

    Writes {"error": str, "cases": {dtype: {quantity: difference} or {"error": str}}} to
    rank<r>.json in spec["result_dir"], then leaves the group in step with the other rank and
    ends the process at once (os._exit): a crash while the collectives' threads are torn down
    (seen: "terminate called without an active exception") cannot lose a result. Never
    raises."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(spec["port"])
    if spec["ifname"]:
        os.environ["GLOO_SOCKET_IFNAME"] = spec["ifname"]
    result: dict = {"error": "", "cases": {}}
    dist = None
    try:
        torch = import_torch()
        import torch.distributed as dist

        torch.set_num_threads(1)
        device = torch.device(spec["devices"][rank])
        if device.type == "cuda":
            torch.cuda.set_device(device)
            full_precision(torch)
        dist.init_process_group(
            spec["backend"],
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=spec["collective_timeout_s"]),
        )
        convert = sync_converter(torch, spec["layer"])
        for dtype_name, _ in spec["cases"]:
            try:
                result["cases"][dtype_name] = sync_case(
                    torch,
                    dist,
                    rank,
                    device,
                    getattr(torch, dtype_name),
                    convert,
                    tuple(spec["split"]),
                    SYNC_SEED,
                )
            except Exception as err:  # noqa: BLE001 - reported per case; the ranks go on
                result["cases"][dtype_name] = {"error": short_error(err)}
    except Exception as err:  # noqa: BLE001 - whatever happens, the parent hears of it
        result["error"] = short_error(err)
    written = Path(spec["result_dir"], f"rank{rank}.json.part")
    written.write_text(json.dumps(result))
    written.rename(written.with_suffix(""))  # atomic: the parent never reads half a result
    try:
        if dist is not None and dist.is_initialized():
            dist.barrier()  # neither rank tears down while the other still communicates
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - the result is written; teardown is best effort
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_sync_group(spec: dict, timeout_s: float) -> tuple[list[dict], str]:
    """Spawn the ranks and wait at most timeout_s for them: (one result per rank, a note).

    The written results are authoritative: a rank without one gets an error saying why (timed
    out, died); one that died after reporting only leaves the note."""
    torch = import_torch()
    import torch.multiprocessing as mp

    world_size = len(spec["devices"])
    with tempfile.TemporaryDirectory(prefix="gpu-check-sync-") as folder:
        spec = {**spec, "result_dir": folder, "port": free_port(), "ifname": loopback_name()}
        context = mp.start_processes(
            _sync_worker,
            args=(world_size, spec),
            nprocs=world_size,
            join=False,
            start_method="spawn",
        )
        deadline = time.monotonic() + timeout_s
        error = ""
        try:
            while not context.join(timeout=0.5):
                if time.monotonic() > deadline:
                    error = f"timed out after {timeout_s:.0f} s"
                    break
        except TimeGuardExpired:
            raise
        except Exception as err:  # noqa: BLE001 - a rank crashed: report, do not raise
            error = f"a rank died: {short_error(err)}"
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
                    process.join(5)
        results, missing = [], False
        for rank in range(world_size):
            path = Path(folder, f"rank{rank}.json")
            if path.exists():
                results.append(json.loads(path.read_text()))
            else:
                missing = True
                why = error or "ended without a result"
                results.append({"error": f"rank {rank}: {why}", "cases": {}})
    del torch
    return results, ("" if missing else error)


def sync_check(label, backend, devices, layer, guard, *, may_not_run: str = "") -> list[str]:
    """Run one SyncBatchNorm group and describe it: one line, then one per dtype.

    may_not_run: why the layer may well not run here (nn.SyncBatchNorm on the CPU, or over gloo
    on CUDA tensors): an error is then a finding ("does not run"), not a failure. A mismatch
    always fails."""
    if guard.left() < 20:
        return [f"{label}: {SKIPPED}"]
    log(f"SyncBatchNorm: {label}")
    spec = {
        "backend": backend,
        "devices": devices,
        "layer": layer,
        "cases": SYNC_CASES,
        "split": SYNC_SPLIT,
        "collective_timeout_s": 60,
    }
    results, note = run_sync_group(spec, timeout_s=min(150.0, max(20.0, guard.left())))
    errors = sorted({r["error"] for r in results if r["error"]})
    if errors:
        if may_not_run:
            return [f"{label}: does not run ({may_not_run}): {'; '.join(errors)}"]
        return [f"{label}: FAILED: {'; '.join(errors)}"]
    split = " + ".join(map(str, SYNC_SPLIT))
    after = f" (then, after reporting, {note})" if note else ""
    lines = [f"{label}, global batch {sum(SYNC_SPLIT)} split {split}{after}:"]
    for dtype_name, tolerance in SYNC_CASES:
        cases = [r["cases"].get(dtype_name, {"error": "no result"}) for r in results]
        case_errors = sorted({c["error"] for c in cases if "error" in c})
        if case_errors:
            status = f"does not run ({may_not_run})" if may_not_run else "FAILED"
            lines.append(f"  - {dtype_name}: {status}: {'; '.join(case_errors)}")
            continue
        worst = {q: max(c[q] for c in cases) for q in cases[0]}
        overall = max(worst.values())
        verdict = "ok" if overall <= tolerance else "MISMATCH"
        parts = ", ".join(f"{q} {v:.1e}" for q, v in worst.items())
        lines.append(
            f"  - {dtype_name}: max |difference| / max(1, max |nn.BatchNorm2d|), both ranks: "
            f"{parts}; worst {overall:.1e}, tolerance {tolerance:g} ({verdict})"
        )
    return lines


def torch_syncbn_section(device, guard) -> list[str]:
    torch = import_torch()
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    label = "nn.SyncBatchNorm, nccl, 2 processes on cuda:0 and cuda:1"
    if device.type == "cuda" and gpus >= 2:
        lines = sync_check(label, "nccl", ["cuda:0", "cuda:1"], "torch", guard)
    else:
        lines = [f"{label}: skipped: {gpus} GPU{'' if gpus == 1 else 's'}"]
    where = "cuda:0" if device.type == "cuda" else "cpu"
    if device.type == "cuda":
        why = "nccl is its backend; gloo has only some collectives for CUDA tensors"
    else:
        why = "nn.SyncBatchNorm takes GPU tensors only"
    lines += sync_check(
        f"nn.SyncBatchNorm, gloo, 2 processes both on {where}",
        "gloo",
        [where, where],
        "torch",
        guard,
        may_not_run=why,
    )
    return lines


def sync_solution_on(device, guard: TimeGuard | None = None, path: Path = SYNC_SOLUTION):
    """The exercise 10 solution's SyncBatchNorm in 2 gloo processes, both on `device`, global
    batch split 3 + 5, against nn.BatchNorm2d on the whole batch (float64 and float32).

    Returns report lines; "skipped: no solutions/10_batchnorm_at_scale.py" without the file."""
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    if not path.exists():
        return [f"solution SyncBatchNorm: skipped: no {shown}"]
    where = "cuda:0" if device.type == "cuda" else "cpu"
    return sync_check(
        f"solution SyncBatchNorm ({shown}), gloo, 2 processes both on {where}",
        "gloo",
        [where, where],
        str(path),
        guard or TimeGuard(300.0),
    )


# --- report ------------------------------------------------------------------------------------


def nvidia_smi(field: str) -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        return out.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def machine_line(device) -> str:
    torch = import_torch()
    try:
        from importlib.metadata import version

        triton = version("triton")
    except Exception:  # noqa: BLE001 - not installed
        triton = "not installed"
    software = (
        f"torch {torch.__version__}; triton {triton}; Python {platform.python_version()}; "
        f"{os.cpu_count()} CPU cores"
    )
    if device.type != "cuda":
        return (
            f"Device: CPU ({platform.machine()}), dry run with tiny shapes: the numbers only show "
            f"that every code path runs. {software}."
        )
    props = torch.cuda.get_device_properties(device)
    l2 = getattr(props, "L2_cache_size", 0)
    return (
        f"Card: {torch.cuda.get_device_name(device)} ({props.total_memory / 2**30:.0f} GiB, "
        f"{props.multi_processor_count} SMs, L2 {l2 / 2**20:.0f} MiB, compute capability "
        f"{props.major}.{props.minor}), {torch.cuda.device_count()} visible; driver "
        f"{nvidia_smi('driver_version')}; CUDA {torch.version.cuda} (torch's build); cuDNN "
        f"{torch.backends.cudnn.version()}; {software}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, no results file")
    parser.add_argument("--repeat", type=int, help="timed calls per measurement (CUDA: 30)")
    parser.add_argument("--warmup", type=int, help="untimed calls first (CUDA: 5)")
    parser.add_argument(
        "--budget", type=float, help="seconds before steps are skipped (CUDA: 420, dry run: 110)"
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="also write the report to this file (on a lent machine: under $OUT, since only "
        "that comes back; append it to bench/RESULTS.md here)",
    )
    args = parser.parse_args(argv)
    torch = import_torch()
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run, or on a machine with a GPU")
    dry = args.dry_run
    guard = TimeGuard(args.budget or (110.0 if dry else 420.0), 40.0 if dry else 60.0)
    guard.arm()
    device = torch.device("cpu" if dry else "cuda")
    shape = DRY_SHAPE if dry else GPU_SHAPE
    repeat = args.repeat or (3 if dry else 30)
    warmup = args.warmup or (1 if dry else 5)
    if dry:
        torch.set_num_threads(1)  # a shared 2-core machine
    sections: dict[str, list[str]] = {}

    def run(title: str, step: Callable[[], list[str]]) -> None:
        if guard.left() <= 0:
            sections[title] = [SKIPPED]
            return
        log(title)
        try:
            sections[title] = step()
        except Exception as err:  # noqa: BLE001 - the report records it; the run goes on
            sections[title] = [f"FAILED: {short_error(err)}"]

    ns: dict = {}

    def correctness() -> list[str]:
        ns.update(solution_layers())
        return correctness_on(device, ns)

    # Bounded steps first; the timing loop, guarded step by step, last.
    titles = (
        f"1. Correctness of the 05 solution layers on {device.type}",
        f"2. Speed of BatchNorm2d at {tuple(shape)}",
        "3. nn.SyncBatchNorm",
        "4. The exercise 10 solution's SyncBatchNorm",
    )
    run(titles[0], correctness)
    run(titles[2], lambda: torch_syncbn_section(device, guard))
    run(titles[3], lambda: sync_solution_on(device, guard))
    dtypes = ("float32", "float16")
    run(titles[1], lambda: speed_section(ns, device, shape, dtypes, guard, warmup, repeat))
    guard.disarm()

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    kind = "dry run on the CPU" if dry else "GPU check"
    report = [
        "",
        f"## {kind} (`bench/gpu_check.py`) — {now}",
        "",
        machine_line(device),
        f"Wall time {guard.elapsed():.0f} s (budget {guard.budget_s:.0f} s).",
    ]
    for title in titles:
        lines = sections[title]
        report += ["", f"### {title}", ""]
        if title != titles[1]:  # the speed section is a table with its notes
            lines = [line if line.startswith("  - ") else f"- {line}" for line in lines]
        report += lines
    failures = [title for title in titles if failed(sections[title])]
    verdict = "Every check passed."
    if failures:
        verdict = f"Failed or incomplete: {', '.join(failures)}."
    report += ["", verdict, ""]
    text = "\n".join(report)
    print(text)
    if not dry:
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write(text)
        log(f"appended to {RESULTS}")
    if args.report:
        args.report.write_text(text.lstrip("\n"), encoding="utf-8")
        log(f"written to {args.report}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
