"""The cgroup v2 code path, on a stand-in for the unified tree (this project's machines mount
v1 only, where tests/test_sandbox.py shows the limits enforced by the kernel).

What is checked here is what the grader writes and in which order: the controllers enabled in
the parent's cgroup.subtree_control, the group's memory.max / memory.swap.max / pids.max /
cpu.max, how the sandbox's shell joins it, what is read back after a run, and removal. That the
kernel enforces those values on a real v2 host is not shown here."""

from __future__ import annotations

import os

import pytest

from bnlab.grading import cgroups


@pytest.fixture
def unified(tmp_path, monkeypatch):
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("cpu\n")
    monkeypatch.setattr(cgroups, "ROOT", root)
    real_mkdir = os.mkdir

    def kernel_mkdir(path, mode=0o777, *, dir_fd=None):
        """A new group comes with its interface files, as the kernel creates them."""
        real_mkdir(path, mode)
        for name, content in {
            "cgroup.procs": "",
            "memory.max": "max\n",
            "memory.swap.max": "max\n",
            "memory.peak": "0\n",
            "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
            "pids.max": "max\n",
            "pids.events": "max 0\n",
            "cpu.max": "max 100000\n",
            "cpu.weight": "100\n",
        }.items():
            with open(os.path.join(path, name), "w") as f:
                f.write(content)

    monkeypatch.setattr(os, "mkdir", kernel_mkdir)
    return root


def _read(path) -> str:
    return path.read_text().strip()


def test_v2_is_detected_when_the_controllers_are_there(unified, monkeypatch):
    monkeypatch.setattr(cgroups, "_v1_ok", lambda: False)
    assert cgroups._v2_ok()
    (unified / "cgroup.controllers").write_text("cpu io\n")
    assert not cgroups._v2_ok()


def test_v2_group_gets_every_limit_and_is_removed(unified):
    group = cgroups.Cgroup.create("v2", memory_bytes=3 * 2**30, pids=1024, cpu=0.9)
    (d,) = group.dirs
    assert d.parent == unified and d.name.startswith(f"{cgroups.PREFIX}-{cgroups.owner_tag()}-")
    # the controllers the parent did not delegate yet, enabled before the group is made
    assert _read(unified / "cgroup.subtree_control") == "+memory +pids"
    assert _read(d / "memory.max") == str(3 * 2**30)
    assert _read(d / "memory.swap.max") == "0"  # no swap: the memory limit is the real one
    assert _read(d / "pids.max") == "1024"
    assert _read(d / "cpu.max") == f"90000 {cgroups.CPU_PERIOD_US}"
    assert _read(d / "cpu.weight") == "25"  # the grader's own processes go first
    script = group.join_command(["prlimit", "bwrap"])
    assert str(d / "cgroup.procs") in script[2] and script[-2:] == ["prlimit", "bwrap"]
    assert not group.hit_memory_limit() and not group.hit_process_limit()
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (d / "pids.events").write_text("max 7\n")
    (d / "memory.peak").write_text(f"{2**30}\n")
    assert group.hit_memory_limit() and group.hit_process_limit()
    assert group.peak_memory() == 2**30
    for f in d.iterdir():  # the kernel's files vanish with the group; rmdir needs it empty here
        f.unlink()
    group.remove()
    assert not d.exists()


def test_v2_stale_groups_of_dead_graders_are_swept(unified):
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = unified / f"{cgroups.PREFIX}-{cgroups.owner_tag(gone.pid)}-0"
    stale.mkdir()
    (stale / "cgroup.procs").write_text("")
    live = unified / f"{cgroups.PREFIX}-{cgroups.owner_tag()}-99"
    live.mkdir()
    # The same dead pid in another pid namespace (a grader in another container sharing the
    # tree): its pids mean nothing here, so its group is left alone.
    foreign = unified / f"{cgroups.PREFIX}-{gone.pid}n{int(cgroups.pid_namespace()) + 1}-0"
    foreign.mkdir()
    for f in stale.iterdir():
        f.unlink()
    removed = cgroups.sweep_stale("v2")
    assert removed == [stale] and live.exists() and foreign.exists()
