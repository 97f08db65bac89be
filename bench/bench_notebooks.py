"""Benchmark: each exercise notebook, solution version (hidden tests included), top to bottom.

Executed with nbclient in a fresh kernel, the way nbgrader's autograde runs it; compared with
the start of an empty kernel in the same run. Appends a table to bench/RESULTS.md.

    .venv/bin/python bench/bench_notebooks.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time

import nbformat
from bench_book import REPO, machine
from nbclient import NotebookClient

from bnlab.core.course import source_notebook, stems


def run(nb) -> float:
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    empty = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    rows = {"(empty kernel: start + `1 + 1`)": [run(empty) for _ in range(args.repeat)]}
    for stem in stems():
        rows[stem] = [run(source_notebook(stem)) for _ in range(args.repeat)]
    lines = [
        "",
        f"## Exercise notebooks, solution version — {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}. nbclient, fresh kernel per run, {args.repeat} runs each "
        "(`bench/bench_notebooks.py`). Goals: NumPy notebooks (02-04) ≤ 30 s, "
        "framework notebooks (05) ≤ 60 s.",
        "",
        "| notebook | median (s) | runs (s) |",
        "|---|---|---|",
    ]
    for name, times in rows.items():
        runs = ", ".join(f"{t:.1f}" for t in times)
        lines.append(f"| {name} | {statistics.median(times):.1f} | {runs} |")
    lines.append("")
    with (REPO / "bench" / "RESULTS.md").open("a") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
