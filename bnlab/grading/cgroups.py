"""A control group per sandbox: limits that hold for the whole submission, not per process.

rlimits are per process (RLIMIT_DATA does not even count shared mappings, and three children
may each take the whole allowance), so each sandbox run also gets its own cgroup with

* memory: `memory.limit_in_bytes` and `memory.memsw.limit_in_bytes` (v1) or `memory.max` and
  `memory.swap.max = 0` (v2): every process of the submission together, shared mappings and
  page cache included, no swap;
* processes: `pids.max` for the whole tree;
* CPU: a CFS quota (`cpu.cfs_quota_us` / `cpu.max`) of a fraction of one core, so that a
  submission running 240 busy processes slows only itself, not the honest neighbour graded
  beside it; and a quarter of the default weight (`cpu.shares` / `cpu.weight`), so that on a
  busy host the grader's own work (judging, computing the run's references) goes first.

Both cgroup versions are supported: v1 hierarchies under /sys/fs/cgroup/{memory,pids,cpu}
(this project's machines), the unified v2 tree elsewhere. `available()` says which is usable
and, when none is, why; the grader then prints that the limits are per process only.
The sandbox process joins its cgroups itself, before it executes prlimit and bubblewrap
(`join_command`), so everything the submission starts is inside from the first instruction.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "bnlab"
CPU_PERIOD_US = 100_000
# A quarter of the default weight: when cores are contended, the grader's own processes (the
# judges, the primer computing the references) go before learner code; an idle core is still
# the sandbox's to use up to its quota.
CPU_SHARES_V1 = 256  # default 1024
CPU_WEIGHT_V2 = 25  # default 100
_counter = itertools.count()
_lock = threading.Lock()


def _v1_ok() -> bool:
    return all((ROOT / c / "cgroup.procs").exists() for c in ("memory", "pids", "cpu"))


def _v2_ok() -> bool:
    controllers = ROOT / "cgroup.controllers"
    if not controllers.exists():
        return False
    have = set(controllers.read_text().split())
    return {"memory", "pids", "cpu"} <= have


@functools.cache
def pid_namespace() -> str:
    """This process's pid namespace (the inode of /proc/self/ns/pid), "0" where unknown."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def owner_tag(pid: int | None = None) -> str:
    """How a grading process names itself in its cgroups and work folders: `PIDnNS`, its pid
    and pid namespace. The namespace keeps a grader in one container from taking a live
    grader's folders or groups in another (sharing /tmp or the cgroup tree) for a dead one's:
    pids mean nothing across namespaces."""
    return f"{os.getpid() if pid is None else pid}n{pid_namespace()}"


def _digits(text: str, most: int) -> bool:
    return 0 < len(text) <= most and text.isascii() and text.isdigit()


def name_pid(text: str) -> int | None:
    """The pid in a grading process's `owner_tag` (a cgroup's name, a work folder's), or None
    when `text` is not one, or names a process of another pid namespace, whose liveness this
    process cannot see. Digits are ASCII only, a pid at most 9 of them (pid_max is below
    2**22), so that a name someone else made (`²`, 20 digits) never raises. A bare pid (the
    names before namespaces were written) counts as this namespace's."""
    pid, sep, namespace = text.partition("n")
    if sep and not (_digits(namespace, 20) and namespace == pid_namespace()):
        return None
    return int(pid) if _digits(pid, 9) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(version: str) -> list[Path]:
    """Remove the groups of grading processes that no longer exist (a grader killed with
    kill -9 cannot remove its own): whatever is left in them is killed first. Returns the
    folders removed. The group name carries the grading process's `owner_tag` (`bnlab-TAG-N`);
    groups of another pid namespace are left to the graders there."""
    parents = [ROOT / c for c in ("memory", "pids", "cpu")] if version == "v1" else [ROOT]
    stale: dict[str, list[Path]] = {}
    for parent in parents:
        for d in parent.glob(f"{PREFIX}-*-*"):
            parts = d.name.split("-")
            pid = name_pid(parts[1]) if len(parts) == 3 else None
            if pid is not None and not pid_alive(pid):
                stale.setdefault(d.name, []).append(d)
    removed = []
    for dirs in stale.values():
        group = Cgroup(version, dirs)
        group.remove()
        removed += [d for d in dirs if not d.exists()]
    return removed


def available() -> tuple[str | None, str]:
    """('v1' | 'v2' | None, why): which cgroup version this grader can use here. Groups left by
    grading processes that died are removed on the way."""
    if os.geteuid() != 0:
        return None, "not running as root (cgroups need root, or a delegated subtree)"
    for version, ok in (("v1", _v1_ok), ("v2", _v2_ok)):
        if ok():
            try:
                sweep_stale(version)
            except OSError:  # a leftover that cannot be removed must not stop grading
                pass
            try:
                probe = Cgroup.create(version, memory_bytes=64 * 2**20, pids=8, cpu=1.0)
                probe.remove()
                return version, f"cgroup {version}"
            except OSError as err:
                return None, f"cgroup {version} is mounted but not writable ({err})"
    return None, "no cgroup v1 memory/pids/cpu hierarchy and no cgroup v2 tree with them"


@dataclass
class Cgroup:
    version: str
    dirs: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, version: str, memory_bytes: int, pids: int, cpu: float) -> Cgroup:
        with _lock:
            name = f"{PREFIX}-{owner_tag()}-{next(_counter)}"
        group = cls(version)
        quota = max(1000, int(cpu * CPU_PERIOD_US))
        try:
            if version == "v1":
                for controller in ("memory", "pids", "cpu"):
                    d = ROOT / controller / name
                    d.mkdir()
                    group.dirs.append(d)
                mem = ROOT / "memory" / name
                _write(mem / "memory.limit_in_bytes", memory_bytes)
                if (mem / "memory.memsw.limit_in_bytes").exists():
                    _write(mem / "memory.memsw.limit_in_bytes", memory_bytes)  # no swap
                _write(ROOT / "pids" / name / "pids.max", pids)
                _write(ROOT / "cpu" / name / "cpu.cfs_period_us", CPU_PERIOD_US)
                _write(ROOT / "cpu" / name / "cpu.cfs_quota_us", quota)
                _write(ROOT / "cpu" / name / "cpu.shares", CPU_SHARES_V1)
            else:
                control = ROOT / "cgroup.subtree_control"
                enabled = set(control.read_text().split())
                missing = {"memory", "pids", "cpu"} - enabled
                if missing:
                    _write(control, " ".join(f"+{c}" for c in sorted(missing)))
                d = ROOT / name
                d.mkdir()
                group.dirs.append(d)
                _write(d / "memory.max", memory_bytes)
                if (d / "memory.swap.max").exists():
                    _write(d / "memory.swap.max", 0)
                _write(d / "pids.max", pids)
                _write(d / "cpu.max", f"{quota} {CPU_PERIOD_US}")
                _write(d / "cpu.weight", CPU_WEIGHT_V2)
        except OSError:
            group.remove()
            raise
        return group

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def join_command(self, argv: list[str]) -> list[str]:
        """argv, run by a shell that first moves itself into every cgroup of this group."""
        files = " ".join(self.procs_files())  # our own paths: no characters to quote
        script = f'for f in {files}; do echo $$ > "$f" || exit 125; done; exec "$@"'
        return ["/bin/sh", "-c", script, "sh", *argv]

    def _memory_dir(self) -> Path:
        return next(d for d in self.dirs if self.version == "v2" or d.parent.name == "memory")

    def peak_memory(self) -> int:
        d = self._memory_dir()
        name = "memory.max_usage_in_bytes" if self.version == "v1" else "memory.peak"
        try:
            return int((d / name).read_text())
        except (OSError, ValueError):
            return 0

    def hit_memory_limit(self) -> bool:
        d = self._memory_dir()
        try:
            # Reaching the limit counts, not only a kill: at the limit the kernel may reclaim
            # and stall the group's processes instead of killing one (three processes of 2 GiB
            # under 4 GiB were stalled until the time limit, with no OOM kill).
            if self.version == "v1":
                control = dict(
                    line.split() for line in (d / "memory.oom_control").read_text().splitlines()
                )
                failcnt = int((d / "memory.failcnt").read_text())
                return int(control.get("oom_kill", 0)) > 0 or failcnt > 0
            events = dict(line.split() for line in (d / "memory.events").read_text().splitlines())
            return int(events.get("oom_kill", 0)) > 0 or int(events.get("max", 0)) > 0
        except (OSError, ValueError):
            return False

    def hit_process_limit(self) -> bool:
        d = next((d for d in self.dirs if self.version == "v2" or d.parent.name == "pids"), None)
        try:
            if self.version == "v2":
                events = dict(
                    line.split() for line in (d / "pids.events").read_text().splitlines()
                )
                return int(events.get("max", 0)) > 0
            return int((d / "pids.events").read_text().split()[-1]) > 0
        except (OSError, ValueError, IndexError, AttributeError):
            return False

    def kill_all(self) -> None:
        """SIGKILL everything left in the group (a process that escaped the process group).

        Most often what is left is still exiting (the sandbox's processes are leaving the
        group as it is read), so the waits between reads start at 1 ms and double up to 50 ms:
        about 1 s in all, as before, without the 50 ms that a first fixed wait added to most
        submissions."""
        for pause in _backoff(total=1.0):
            pids = set()
            for f in self.procs_files():
                try:
                    pids |= {int(p) for p in Path(f).read_text().split()}
                except (OSError, ValueError):
                    pass
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(pause)

    def remove(self) -> None:
        self.kill_all()
        for d in reversed(self.dirs):
            for pause in _backoff(total=1.0):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY while the last process leaves
                    time.sleep(pause)
        self.dirs = []


def _backoff(total: float, first: float = 0.001, longest: float = 0.05) -> Iterator[float]:
    """Pauses of `first` seconds doubling up to `longest`, adding up to about `total`."""
    pause, spent = first, 0.0
    while spent < total:
        yield pause
        spent += pause
        pause = min(2 * pause, longest)


def _write(path: Path, value) -> None:
    with open(path, "w") as f:
        f.write(str(value))
