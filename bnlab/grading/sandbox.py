"""Run untrusted learner code under bubblewrap: no network, an unprivileged user, limits.

The sandbox sees the Python installation and the learner side of the course package
(`learner_side()`) read-only, its own job folder
read-only and one output folder; nothing else of the host: not `solutions/`, not the gradebook,
not other submissions, not the grader's home or the repository. For a NumPy exercise the
deep-learning frameworks are hidden as well (empty directories over their packages), so that an
answer cannot be computed by them whatever the learner does to the in-process guard.

Limits: wall time (the process group is killed), CPU time, data memory, number of processes
(of the sandbox user) and file size, which bounds output floods written to files or stdout
(Python ignores SIGXFSZ, so a flood is cut at the limit and further writes fail with EFBIG).

As root (CI, a grading server) bubblewrap runs privileged and `setpriv` drops the learner's code
to an unused uid/gid (100000 + the grading process's pid) inside the namespaces, so
RLIMIT_NPROC applies to it and to nothing else. As a normal user
bubblewrap creates a user namespace instead (the code runs as the instructor's own uid, mapped).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bnlab
from bnlab.grading import cgroups

NOBODY = 65534
UID_BASE = 100_000  # as root, each grading process gives its sandboxes their own uid


_slots = itertools.count()
_slots_lock = threading.Lock()


def sandbox_uid() -> int:
    """A uid no account uses, distinct for each concurrent sandbox (the grading process's pid
    and a slot within it), so that one submission's fork bomb cannot use up another's
    process allowance."""
    with _slots_lock:
        slot = next(_slots) % 100
    return UID_BASE + (os.getpid() % 1_000_000) * 100 + slot


TMP_BYTES = 256 * 2**20  # the sandbox's /tmp is a tmpfs of this size
HIDDEN_FRAMEWORKS = ("torch", "functorch", "torchgen", "tensorflow", "keras", "tf_keras", "jax")


class SandboxUnavailable(RuntimeError):
    """Bubblewrap is missing or does not work here: the grader refuses to grade."""


class Cancelled(RuntimeError):
    """`run`'s `cancel` was set (the grading run stopped early): the program was not started,
    or was killed with everything it started; no outcome, and so no grade."""


@dataclass(frozen=True)
class Limits:
    wall_s: float = 120.0
    cpu_s: int = 240
    memory_bytes: int = 4 * 2**30  # RLIMIT_DATA: heap and private mappings
    processes: int = 256  # RLIMIT_NPROC for the sandbox user (threads count too)
    file_bytes: int = 16 * 2**20  # RLIMIT_FSIZE: any single file, stdout included
    output_chars: int = 20_000  # how much of stdout/stderr the grader keeps
    cpu_share: float = 0.9  # cores the whole submission may use at once (cgroup CPU quota)
    cgroups: bool = True  # whole-submission memory, processes and CPU (bnlab.grading.cgroups)
    out_bytes: int = 512 * 2**20  # everything the submission leaves in /out (0: no limit)
    out_files: int = 4096  # files and folders in /out


@dataclass
class Outcome:
    returncode: int | None
    timed_out: bool
    wall_s: float
    stdout: str
    stderr: str
    output_bytes: int = 0  # what reached stdout and stderr (each file is cut at file_bytes)
    output_capped: bool = False
    cgroup: str | None = None  # "v1" / "v2" when the submission ran in its own cgroup
    memory_limit_hit: bool = False  # the cgroup's memory limit (all processes together)
    process_limit_hit: bool = False
    peak_memory: int = 0  # bytes, all processes together (cgroup accounting)
    disk_limit_hit: bool = False  # /out reached its size or file-count limit
    # Whether the program inside said, on a pipe of its own, that it started (`run`'s
    # `start_token`); None when not asked. What runs after that cannot take it back.
    started: bool | None = None

    @property
    def limit_reason(self) -> str | None:
        """Which limit stopped the run, in words, or None when it ended by itself."""
        if self.timed_out and self.memory_limit_hit:
            # At the memory limit the kernel may reclaim and stall rather than kill: the time
            # limit then ends it, and the memory is the cause worth naming.
            return (
                "it reached its memory limit (all processes together), ran past the time "
                "limit and was stopped"
            )
        if self.timed_out:
            return "it ran past the time limit and was stopped"
        if self.disk_limit_hit and self.returncode != 0:
            return "it wrote more files to /out than allowed and was stopped"
        if self.memory_limit_hit and self.returncode != 0:
            return "its processes together used more memory than allowed and it was stopped"
        rc = self.returncode
        if rc is None or rc == 0:
            return None
        if rc in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            return "it used more CPU time than allowed and was stopped"
        if rc in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
            return "it wrote more output than allowed and was stopped"
        if rc in (-signal.SIGKILL, 128 + signal.SIGKILL, -signal.SIGSEGV, 128 + signal.SIGSEGV):
            return "it was killed (out of memory or a crash)"
        return f"the notebook's process exited early (exit code {rc})"


@functools.cache
def cgroup_status() -> tuple[str | None, str]:
    """('v1' | 'v2' | None, in words): checked once per process."""
    return cgroups.available()


def cgroup_version() -> str | None:
    return cgroup_status()[0]


def _mount_tmpfs(path: Path, limits: Limits) -> bool:
    """A size- and inode-limited tmpfs on `path` (root only); False when it cannot be mounted."""
    if os.geteuid() != 0:
        return False
    options = f"size={limits.out_bytes},nr_inodes={limits.out_files + 1},mode=0777"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options + ",nosuid,nodev,noexec", "bnlab-out", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return done.returncode == 0


WORK_PREFIX = "bnlab-grade-"


def work_prefix() -> str:
    """The name prefix of this process's temporary grading folders (`WORK_PREFIX` and the
    `cgroups.owner_tag`: pid and pid namespace), by which a later grading process tells a dead
    one's leftovers (`sweep_stale_work`)."""
    return f"{WORK_PREFIX}{cgroups.owner_tag()}-"


def _work_owner(name: str) -> int | None:
    """The pid in a work folder's name, or None when the name is not one (any local user can
    create such names in a shared temporary folder: `²` or 20 digits must not raise)."""
    pid, sep, _ = name[len(WORK_PREFIX) :].partition("-")
    return cgroups.name_pid(pid) if name.startswith(WORK_PREFIX) and sep else None


def _unescape_mount_path(field: str) -> str:
    # /proc/self/mountinfo writes space, tab, newline and backslash as \ooo (octal)
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mounts_under(folder: Path) -> list[str]:
    """Mount points strictly below `folder` in this process's mount namespace (which lists
    them with links resolved, so `folder` is resolved too)."""
    inside = os.path.realpath(folder).rstrip("/") + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    points = (_unescape_mount_path(line.split()[4]) for line in lines if line.count(" ") >= 4)
    return [p for p in points if p.startswith(inside)]


def sweep_stale_work(tmp: Path | None = None) -> list[Path]:
    """Remove what grading processes that no longer run left in the temporary folder: their
    work folders (named `work_prefix()`) and the /out tmpfs mounted in them. A grader killed
    with SIGKILL or by the out-of-memory killer never runs its cleanup, and a tmpfs keeps its
    files in memory until it is unmounted. Only folders this user owns, that are not links,
    whose pid, of this pid namespace, no longer exists, are touched (`cgroups.name_pid`: a
    folder of another namespace's grader is left alone, as its cgroups are). Returns the
    folders removed."""
    tmp = Path(tmp or tempfile.gettempdir())
    removed = []
    try:
        entries = list(os.scandir(tmp))
    except OSError:
        return removed
    for entry in entries:
        pid = _work_owner(entry.name)
        if pid is None or pid == os.getpid():
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or cgroups.pid_alive(pid):
            continue
        folder = Path(entry.path)
        for point in sorted(_mounts_under(folder), reverse=True):  # the deepest first
            subprocess.run(["umount", "-l", point], stdin=subprocess.DEVNULL, capture_output=True)
        if _mounts_under(folder):
            continue  # never delete through a mount that is still there
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.lexists(folder):
            removed.append(folder)
    return removed


@functools.cache
def _swept_once() -> list[Path]:
    try:
        return sweep_stale_work()
    except Exception as err:  # noqa: BLE001 - cleaning up must never stop grading
        print(f"bn-course: warning: sweeping dead graders' folders failed: {err}", file=sys.stderr)
        return []


@contextlib.contextmanager
def output_folder(path: Path, limits: Limits) -> Iterator[Path]:
    """The submission's /out: as root a tmpfs of `limits.out_bytes` and `limits.out_files`
    (a write past either fails with ENOSPC, and its pages count towards the submission's
    memory cgroup); otherwise a plain folder that `run` watches and stops the submission when
    it grows past the limits. Unmounted (and so emptied) on exit. The first call in a process
    sweeps what dead grading processes left (`sweep_stale_work`)."""
    _swept_once()
    path.mkdir()
    mounted = bool(limits.out_bytes) and _mount_tmpfs(path, limits)
    try:
        yield path
    finally:
        if mounted:
            subprocess.run(
                ["umount", "-l", str(path)], stdin=subprocess.DEVNULL, capture_output=True
            )


def usage_bytes(out: Path) -> int:
    """What a submission's /out holds, in bytes of storage (memory, for a tmpfs)."""
    if os.path.ismount(out):  # its own tmpfs: the file system's count, without a walk
        st = os.statvfs(out)
        return (st.f_blocks - st.f_bfree) * st.f_frsize
    return _usage(out, 100_000)[0]


def _usage(root: Path, stop_after: int) -> tuple[int, int]:
    """(bytes, entries) under root, without following links; stops counting past stop_after
    entries."""
    size = entries = 0
    stack = [str(root)]
    while stack and entries <= stop_after:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    size += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return size, entries


def _full(out: Path, limits: Limits) -> bool:
    """Whether /out has reached its limits: on the tmpfs from its free space, otherwise by
    counting."""
    if not limits.out_bytes:
        return False
    if os.path.ismount(out):
        st = os.statvfs(out)
        return st.f_bavail * st.f_frsize < 2**20 or st.f_favail < 2
    size, entries = _usage(out, limits.out_files)
    return size > limits.out_bytes or entries > limits.out_files


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def interpreter() -> str:
    """This Python's path as the sandbox sees it: its folder resolved, because the sandbox has
    only the resolved folders (`python` run as `../.venv/bin/python` from another folder would
    be a path through a folder the sandbox lacks). The file itself stays as it is: in a
    virtual environment it is a link to the base interpreter, and the link makes it the venv's."""
    exe = Path(os.path.abspath(sys.executable))
    return str(exe.parent.resolve() / exe.name)


def _site_packages() -> Path:
    """The environment's site-packages, resolved: the sandbox's interpreter (`interpreter`)
    finds its packages at the resolved path, so that is where the frameworks must be hidden
    (an unresolved path would hide them at a path nothing inside reads)."""
    found = [p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix)]
    return Path(found[0]).resolve()


def learner_side() -> list[Path]:
    """The parts of the course package that the sandbox sees: the package's `__init__`, the
    learner's checks and their low-level support (`bnlab.checks`, `bnlab.core`), and the runner.
    The rest of the grading service (judge, gradebook ledger, cohort runner, intake) and the
    book's helpers stay outside."""
    package = Path(bnlab.__file__).resolve().parent
    grading = Path(__file__).resolve().parent
    return [
        package / "__init__.py",
        package / "checks",
        package / "core",
        grading / "__init__.py",
        grading / "sandbox_runner.py",
    ]


START_TOKEN = "@START_FD@"  # in a runner's argv: replaced by the start pipe's fd (`run`)


def runner_argv(module: str) -> list[str]:
    """The command a sandbox runs: the grader's runner `module`, its job on stdin, /out."""
    return [interpreter(), "-m", module, "-", "/out", START_TOKEN]


def check_interpreter(limits: Limits, runner: str) -> None:
    """Raise SandboxUnavailable, in words, when the sandbox cannot start the grader's runner
    with this Python (the grader started through a path the sandbox lacks, a package the
    runner needs missing there, say): one clear refusal before a run, rather than a grader
    error for every submission in it. The check is the runner itself on a job with no cells,
    so it gets as far as a submission's runner does before it says "started"."""
    empty = json.dumps({"cells": [], "numpy_exercise": False}).encode()
    with tempfile.TemporaryDirectory(prefix=work_prefix()) as tmp:
        job = Path(tmp) / "job"
        job.mkdir()
        with output_folder(Path(tmp) / "out", limits) as out:
            argv = runner_argv(runner)
            outcome = run(job, out, argv, limits, False, stdin_data=empty, start_token=START_TOKEN)
    if outcome.started:
        return
    if outcome.timed_out:
        raise SandboxUnavailable(
            f"the sandbox did not start this Python ({interpreter()}) within the time limit "
            f"of {limits.wall_s:g} s: raise --time-limit, or grade on a less loaded machine"
        )
    said = outcome.stderr.strip().splitlines()[-1:] or ["nothing on stderr"]
    raise SandboxUnavailable(
        f"the sandbox cannot start the grader's runner ({interpreter()} -m {runner}, exit code "
        f"{outcome.returncode}: {said[0][:300]}): run bn-course from the environment it "
        "is installed in, by the path of that environment's own folder"
    )


def _mkdirs(path: Path) -> list[str]:
    """bwrap arguments that create every parent of `path` world-readable (bwrap's default is
    0700, which the unprivileged user could not traverse)."""
    args = []
    for parent in reversed(path.parents):
        if str(parent) != "/":
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def command(
    job: Path, out: Path, argv: list[str], hide_frameworks: bool, privileged: bool, uid: int
) -> list[str]:
    bwrap = bwrap_path()
    if not bwrap:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed: install it (sudo apt-get install bubblewrap) "
            "or, on a machine where you accept that learner code runs with your permissions, "
            "pass --unsafe-no-sandbox"
        )
    args = [bwrap, "--die-with-parent", "--new-session"]
    args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    args += ["--unshare-cgroup-try"]
    if privileged:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    # /tmp first: the binds below may live under /tmp (a checkout there) and must stay visible.
    args += ["--size", str(TMP_BYTES), "--perms", "1777", "--tmpfs", "/tmp"]
    for d in ("/usr",):
        args += ["--ro-bind", d, d]
    for name in ("bin", "lib", "lib64", "sbin"):
        target = Path("/") / name
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            args += ["--ro-bind", str(target), str(target)]
    for f in ("/etc/ld.so.cache", "/etc/localtime", "/etc/fonts", "/etc/ssl/certs"):
        args += ["--ro-bind-try", f, f]
    mounted = []
    for src in (Path(sys.base_prefix), Path(sys.prefix), *learner_side()):
        src = src.resolve()
        if any(src == m or m in src.parents for m in mounted):
            continue
        args += _mkdirs(src) + ["--ro-bind", str(src), str(src)]
        mounted.append(src)
    if hide_frameworks:
        site = _site_packages()
        for name in HIDDEN_FRAMEWORKS:
            if (site / name).is_dir():
                args += ["--tmpfs", str(site / name)]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--ro-bind", str(job), "/job", "--bind", str(out), "/out", "--chdir", "/tmp"]
    env = {
        "HOME": "/tmp",
        "PATH": f"{Path(interpreter()).parent}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/mpl",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KERAS_BACKEND": "tensorflow",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }
    args.append("--clearenv")
    for key, value in env.items():
        args += ["--setenv", key, value]
    if privileged:
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        args += [
            setpriv,
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
    return args + argv


def _prlimit(limits: Limits, privileged: bool) -> list[str]:
    """Resource limits, set by util-linux `prlimit` on the process it then executes (no
    preexec_fn: grading threads may run several sandboxes at once)."""
    args = [
        shutil.which("prlimit") or "/usr/bin/prlimit",
        f"--cpu={limits.cpu_s}:{limits.cpu_s + 5}",
        f"--data={limits.memory_bytes}",
        f"--fsize={limits.file_bytes}",
        "--core=0",
    ]
    if privileged:  # counted for this sandbox's own uid, which nothing else uses
        args.append(f"--nproc={limits.processes}")
    return [*args, "--"]


def _feed(pipe, data: bytes) -> None:
    """Write `data` to a child's stdin and close it (a child that never reads, or dies, only
    ends the write)."""
    try:
        pipe.write(data)
    except (BrokenPipeError, OSError):
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def run(
    job: Path,
    out: Path,
    argv: list[str],
    limits: Limits,
    hide_frameworks: bool,
    sandbox: bool = True,
    stdin_data: bytes | None = None,
    start_token: str | None = None,
    cancel: threading.Event | None = None,
) -> Outcome:
    """Run argv in the sandbox with /job (read-only) and /out (writable); never raises for
    anything the code inside does. `stdin_data` is written to the process's standard input
    (then closed): what the process must read before any learner code runs, and no file in
    the sandbox holds. `start_token`: an argument of argv that is replaced by the number of a
    pipe's write end; the program writes `started` there and closes it before any learner
    code runs, and `Outcome.started` says whether it did. A program that never started (the
    interpreter not found in the sandbox, say) is then the grader's failure, not a grade.
    `cancel`, once set, stops the program (or keeps it from starting): `Cancelled` is raised."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("the grading run stopped before this sandbox started")
    privileged = os.geteuid() == 0
    out.chmod(0o777)
    job.chmod(0o755)
    if sandbox:
        cmd = command(job, out, argv, hide_frameworks, privileged, sandbox_uid())
    else:  # --unsafe-no-sandbox: same runner, same limits, no isolation
        cmd = [{"/job": str(job), "/out": str(out)}.get(a, a) for a in argv]
    cmd = _prlimit(limits, privileged and sandbox) + cmd
    group = None
    if sandbox and limits.cgroups and cgroup_version() is not None:
        try:
            group = cgroups.Cgroup.create(
                cgroup_version(), limits.memory_bytes, limits.processes, limits.cpu_share
            )
            cmd = group.join_command(cmd)
        except OSError:
            group = None
    ends: tuple[int, int] | None = None  # the start pipe, closed below on every path
    start = time.monotonic()
    try:
        if start_token is not None:
            ends = os.pipe()  # not inherited by any other child (PEP 446)
            cmd = [str(ends[1]) if a == start_token else a for a in cmd]
        passed = () if ends is None else (ends[1],)
        watched = _run_watched(cmd, out, limits, stdin_data, passed, cancel)
        proc, timed_out, disk_limit_hit, sizes, stdout, stderr = watched
        started = None
        if ends is not None:
            os.set_blocking(ends[0], False)  # the child has exited: never wait here
            try:
                started = os.read(ends[0], 64).startswith(b"started")
            except BlockingIOError:  # nothing written
                started = False
    except BaseException:
        if group is not None:
            group.remove()  # kills whatever started
        raise
    finally:
        if ends is not None:
            os.close(ends[0])
            os.close(ends[1])
    wall = time.monotonic() - start
    usage = {}
    if group is not None:
        usage = {
            "cgroup": group.version,
            "memory_limit_hit": group.hit_memory_limit(),
            "process_limit_hit": group.hit_process_limit(),
            "peak_memory": group.peak_memory(),
        }
        group.remove()  # kills whatever is left, even outside the process group
    return Outcome(
        proc.returncode,
        timed_out,
        wall,
        stdout,
        stderr,
        sum(sizes),
        max(sizes) >= limits.file_bytes,
        disk_limit_hit=disk_limit_hit,
        started=started,
        **usage,
    )


def _run_watched(cmd, out: Path, limits: Limits, stdin_data, pass_fds, cancel=None):
    """Start `cmd` (passing it `pass_fds`), feed its stdin, stop it at the wall limit (and,
    without a tmpfs, when /out passes its limits), wait for it. Returns (proc, timed_out,
    disk_limit_hit, sizes of stdout and stderr, their tails)."""
    # stdout and stderr go to unnamed files outside /out: nothing in the sandbox can replace
    # them with a link or a FIFO, and they do not count towards /out's limits.
    with (
        open(os.devnull, "rb") as devnull,
        tempfile.TemporaryFile() as so,
        tempfile.TemporaryFile() as se,
    ):
        # Unsandboxed, the child inherits the environment, minus the grader's own cache.
        env = {k: v for k, v in os.environ.items() if k != "BNLAB_REFERENCE_CACHE"}
        stdin = devnull if stdin_data is None else subprocess.PIPE
        proc = subprocess.Popen(
            cmd,
            stdin=stdin,
            stdout=so,
            stderr=se,
            start_new_session=True,
            env=env,
            pass_fds=pass_fds,
        )
        try:
            timed_out, disk_limit_hit = _wait(proc, out, limits, stdin_data, cancel)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise

        def tail(f) -> str:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - limits.output_chars))
            return f.read().decode("utf-8", "replace")

        sizes = [os.fstat(f.fileno()).st_size for f in (so, se)]
        return proc, timed_out, disk_limit_hit, sizes, tail(so), tail(se)


def _wait(proc, out: Path, limits: Limits, stdin_data, cancel=None) -> tuple[bool, bool]:
    """Feed, time and watch `proc` until it ends: (timed out, /out past its limits); raise
    `Cancelled` when `cancel` was set meanwhile (the process group is killed at once)."""
    if stdin_data is not None:
        threading.Thread(target=_feed, args=(proc.stdin, stdin_data), daemon=True).start()
    # A blocking wait with a timer (Popen.wait(timeout) polls, sleeping up to 50 ms).
    expired = threading.Event()

    def stop():
        expired.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(limits.wall_s, stop)
    timer.start()
    watching = limits.out_bytes and not os.path.ismount(out)
    disk_hit = threading.Event()
    if watching:  # no tmpfs (not root): watch /out and stop the submission past its limits

        def watch():
            while proc.poll() is None and not expired.is_set():
                if _full(out, limits):
                    disk_hit.set()
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    return
                time.sleep(0.05)

        threading.Thread(target=watch, daemon=True).start()
    ended = threading.Event()
    cancelled = threading.Event()
    if cancel is not None:

        def watch_cancel():
            while not ended.wait(0.05):
                if cancel.is_set():
                    cancelled.set()
                    if proc.returncode is None:  # not reaped: its pid is still its own
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGKILL)
                    return

        threading.Thread(target=watch_cancel, daemon=True).start()
    try:
        proc.wait()
    finally:
        ended.set()
        timer.cancel()
    if cancelled.is_set():
        raise Cancelled("the grading run stopped while this sandbox ran")
    return expired.is_set(), disk_hit.is_set() or _full(out, limits)
