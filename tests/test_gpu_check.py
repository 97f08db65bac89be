"""The GPU script runs on the CPU in dry-run mode here, so that it cannot rot before a GPU
session uses it."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_gpu_check_dry_run():
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "BatchNorm2d on cpu" in proc.stdout and "(ok)" in proc.stdout
    assert "| solution BatchNorm2d |" in proc.stdout
