"""GPU check of the PyTorch exercise: correctness on CUDA and speed against cuDNN.

On a CUDA machine: runs the torch checks with the solution's layers on the GPU, then times
forward+backward of the solution's BatchNorm2d (eager and torch.compile'd) against
nn.BatchNorm2d (cuDNN) at N=64, C=256, 56x56, float32, and reports achieved memory bandwidth.
Appends the results, with the card's name, to bench/RESULTS.md. Finishes in well under 5 min.

    python bench/gpu_check.py             # on a CUDA machine
    python bench/gpu_check.py --dry-run   # anywhere: the same code path on the CPU, tiny sizes
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bnlab.core.course import source_notebook  # noqa: E402
from bnlab.core.frameworks import import_torch  # noqa: E402


def solution_layers():
    """The instructor's solution classes, executed from solutions/05_frameworks_torch.py."""
    ns: dict = {}
    for cell in source_notebook("05_frameworks_torch").cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell["id"] == "imports" or meta.get("solution"):
            exec(compile(cell.source, f"<solution:{cell['id']}>", "exec"), ns)
    return ns


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
        if worst >= 1e-4:
            raise SystemExit("\n".join(lines))
    return lines


def bench(fn, x, grad, repeat, device) -> float:
    torch = import_torch()
    for _ in range(3):  # warm-up (and compilation)
        fn(x).backward(grad)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        fn(x).backward(grad)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, no results file")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    torch = import_torch()
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run, or on a machine with a GPU")
    device = torch.device("cpu" if args.dry_run else "cuda")
    shape = (2, 8, 6, 6) if args.dry_run else (64, 256, 56, 56)
    repeat = 2 if args.dry_run else args.repeat
    ns = solution_layers()
    lines = correctness_on(device, ns)

    x = torch.randn(*shape, device=device, requires_grad=True)
    grad = torch.randn(*shape, device=device)
    mine = ns["BatchNorm2d"](shape[1]).to(device)
    candidates = {
        "nn.BatchNorm2d (cuDNN)"
        if device.type == "cuda"
        else "nn.BatchNorm2d": torch.nn.BatchNorm2d(shape[1]).to(device),
        "solution BatchNorm2d": mine,
    }
    if not args.dry_run:
        candidates["solution, torch.compile"] = torch.compile(
            ns["BatchNorm2d"](shape[1]).to(device)
        )
    # Minimal traffic of a fused forward+backward: read x, write y (forward); read x, dy, write
    # dx (backward); float32.
    nbytes = 5 * x.numel() * x.element_size()
    timings = {name: bench(m, x, grad, repeat, device) for name, m in candidates.items()}
    base = next(iter(timings.values()))
    table = [
        "| layer | forward+backward (ms) | achieved GB/s (5 tensor passes) | vs built-in |",
        "|---|---|---|---|",
    ]
    for name, t in timings.items():
        table.append(f"| {name} | {1e3 * t:.3f} | {nbytes / t / 1e9:.0f} | {t / base:.2f}x |")
    card = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU (dry run)"
    report = [
        "",
        f"## GPU check — {datetime.date.today().isoformat()}",
        "",
        f"Device: {card}; torch {torch.__version__}; input {tuple(shape)} float32; "
        f"{repeat} timed iterations after warm-up (`bench/gpu_check.py`).",
        "",
        *[f"- {line}" for line in lines],
        "",
        *table,
        "",
    ]
    print("\n".join(report))
    if not args.dry_run:
        with (REPO / "bench" / "RESULTS.md").open("a") as f:
            f.write("\n".join(report))


if __name__ == "__main__":
    main()
