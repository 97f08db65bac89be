"""Benchmark: cold and warm builds of the learner book, side by side in one run.

Cold: a fresh output folder, so every page executes (no jupyter-cache). Warm: the same folder
again with nothing changed, so cached outputs are reused. Each is repeated; the table and the
machine are appended to bench/RESULTS.md.

    .venv/bin/python bench/bench_book.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JB = str(Path(sys.executable).parent / "jupyter-book")


def build(out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [JB, "build", str(REPO), "--path-output", str(out), "-W", "-n", "--keep-going"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        mem_gib = f"{int(mem) / 2**20:.0f} GiB"
    except OSError:
        mem_gib = "?"
    return f"{cpu}, {os.cpu_count()} cores, {mem_gib}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    cold, warm = [], []
    for _ in range(args.repeat):
        out = Path(tempfile.mkdtemp(prefix="bnlab-bench-"))
        try:
            cold.append(build(out))
            warm.append(build(out))
        finally:
            shutil.rmtree(out, ignore_errors=True)
    pages = len(list((REPO / "book").glob("*.md")))
    rows = [
        "",
        f"## Book build — {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}. Pages: {pages}. Runs: {args.repeat} cold + {args.repeat} warm,",
        "interleaved in one process (`bench/bench_book.py`).",
        "",
        "| build | median (s) | runs (s) |",
        "|---|---|---|",
        f"| cold (fresh output, executes every page) | {statistics.median(cold):.1f} | "
        + ", ".join(f"{t:.1f}" for t in cold)
        + " |",
        f"| warm (nothing changed, cache reused) | {statistics.median(warm):.1f} | "
        + ", ".join(f"{t:.1f}" for t in warm)
        + " |",
        f"| ratio cold / warm | {statistics.median(cold) / statistics.median(warm):.1f}x | |",
        "",
    ]
    results = REPO / "bench" / "RESULTS.md"
    if not results.exists():
        results.write_text("# Benchmark results\n\nEach section is one run, with its machine.\n")
    with results.open("a") as f:
        f.write("\n".join(rows))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
