"""Shared fixtures: paths, submissions made from the corpus, the built book."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# `bn-course grade` draws its hidden inputs afresh for every run; the suite fixes the run seed
# (distinct from the notebooks' own seeds) so that a failure can be reproduced. Tests of the
# per-run draw set it themselves.
os.environ.setdefault("BNLAB_RUN_SEED", "20261202")
BN_COURSE = str(Path(sys.executable).parent / "bn-course")
# Debian's headless Chromium on a machine with no network: no background connections, and no
# host but the local one resolves.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def solution_code(stem: str, cell_id: str) -> str:
    """The source of an answer cell, solution included, as the instructor wrote it."""
    from bnlab.core.course import source_notebook

    cell = next(c for c in source_notebook(stem).cells if c["id"] == cell_id)
    return cell.source


def run_course(*args: str, env: dict | None = None, check: bool = True):
    proc = subprocess.run(
        [BN_COURSE, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"bn-course {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@contextlib.contextmanager
def exclusive(name: str):
    """One test process at a time (the suite runs on several pytest-xdist workers) for work on
    the repository's shared build folder: the first builds, the others then find it warm."""
    lock = REPO / "_build" / f".{name}.lock"
    lock.parent.mkdir(exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def learner_book() -> Path:
    """The learner edition, built (with its execution cache) by the real command."""
    with exclusive("book"):
        run_course("book")
    html = REPO / "_build" / "html"
    assert (html / "index.html").is_file()
    return html


def _variant_lines() -> dict:
    summary = sys.modules.get("test_variants")
    return dict(getattr(summary, "SUMMARY", {})) if summary else {}


_FROM_WORKERS: dict = {}


# The longest modules first. With `--dist loadfile` pytest-xdist hands whole modules to the
# workers in collection order, so the long ones start at once and the short ones fill in
# around them (longest-processing-time-first), instead of one long module starting last while
# the other worker idles. The order of the tests within a module is kept.
LONGEST_FIRST = (
    "test_grading_pipeline.py",
    "test_grading_pipeline_frameworks.py",
    "test_hostile_grading.py",
    "test_grading_pipeline_sync.py",
    "test_book.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_sessionfinish(session):
    """On a pytest-xdist worker: hand the summary lines to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["variants"] = _variant_lines()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """On the pytest-xdist controller: collect what each worker handed over."""
    _FROM_WORKERS.update(getattr(node, "workeroutput", {}).get("variants", {}))


def pytest_terminal_summary(terminalreporter):
    """The count of generated valid programs per exercise (tests/test_variants.py)."""
    lines = {**_FROM_WORKERS, **_variant_lines()}
    if lines:
        terminalreporter.section("generated valid programs")
        for stem in sorted(lines):
            terminalreporter.write_line(lines[stem])
