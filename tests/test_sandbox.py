"""Each protection of bnlab.grading.sandbox, shown by a script that succeeds without it and fails
with it.

The scripts run in the real sandbox (bubblewrap) or, for the "without" half, unsandboxed or with
a generous limit, so that a test fails if its protection is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bnlab.grading import cgroups, sandbox
from conftest import REPO

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None and os.environ.get("CI") != "true",
    reason="bubblewrap is not installed (sudo apt-get install bubblewrap)",
)

SMALL = sandbox.Limits(wall_s=20, cpu_s=20)


def run(tmp_path: Path, code: str, limits=SMALL, use_sandbox=True, hide=False, usage=None):
    """Run `code` as the grader runs learner code; return (outcome, what it wrote to result).
    `usage`, a list, receives (bytes, entries) found in /out after the run."""
    job, out = tmp_path / "job", tmp_path / "out"
    for d in (job, out):
        shutil.rmtree(d, ignore_errors=True)
    job.mkdir()
    (job / "script.py").write_text(textwrap.dedent(code))
    argv = [sys.executable, "/job/script.py"]
    with sandbox.output_folder(out, limits) as out:
        if not use_sandbox:
            argv = [sys.executable, str(job / "script.py")]
            code = code.replace("/out/", f"{out}/")
            (job / "script.py").write_text(textwrap.dedent(code))
        outcome = sandbox.run(job, out, argv, limits, hide_frameworks=hide, sandbox=use_sandbox)
        result = out / "result"
        if usage is not None:
            usage.append(sandbox._usage(out, 10**9))
        return outcome, (result.read_text() if result.exists() else None)


def report(expr: str) -> str:
    """A script that writes 'ok' if `expr` runs, else the exception's name."""
    return f"""
    try:
        {expr}
        msg = "ok"
    except BaseException as err:
        msg = type(err).__name__
    open("/out/result", "w").write(msg)
    """


def test_files_outside_are_invisible(tmp_path):
    secret = REPO / "solutions" / "02_forward_pass.py"
    code = report(f"open({str(secret)!r}).read()")
    assert run(tmp_path, code)[1] == "FileNotFoundError"
    assert run(tmp_path, code, use_sandbox=False)[1] == "ok"


def test_home_and_repository_are_invisible(tmp_path):
    """Only the parts of the home folder that hold the Python installation are there."""
    code = f"""
    import json, os
    try:
        seen = sorted(os.listdir({str(Path.home())!r}))
    except OSError:
        seen = []
    open("/out/result", "w").write(json.dumps([seen, sorted(os.listdir({str(REPO)!r}))]))
    """
    home, repo = json.loads(run(tmp_path, code)[1])
    python_parts = {p.name for p in Path(sys.base_prefix).parents if Path.home() in p.parents}
    assert set(home) <= python_parts | {Path(sys.base_prefix).name}
    assert "solutions" not in repo and "_course" not in repo and ".git" not in repo
    home_out, repo_out = json.loads(run(tmp_path, code, use_sandbox=False)[1])
    assert "solutions" in repo_out


def test_environment_is_read_only(tmp_path):
    target = Path(sys.prefix) / "bnlab-sandbox-write-test"
    code = report(f"open({str(target)!r}, 'w').write('x')")
    try:
        assert run(tmp_path, code)[1] in ("OSError", "PermissionError")
    finally:
        target.unlink(missing_ok=True)


def test_no_network(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept(), daemon=True).start()
    code = report(f"__import__('socket').create_connection(('127.0.0.1', {port}), timeout=3)")
    try:
        assert run(tmp_path, code)[1] == "ConnectionRefusedError"
        assert run(tmp_path, code, use_sandbox=False)[1] == "ok"
    finally:
        server.close()


def test_runs_as_an_unprivileged_user(tmp_path):
    code = """
    import os
    open("/out/result", "w").write(str(os.getuid()))
    """
    uid = int(run(tmp_path, code)[1])
    assert uid != 0
    assert uid != os.getuid() or os.getuid() != 0


def test_numpy_exercises_cannot_import_frameworks(tmp_path):
    code = report("import torch.nn")
    assert run(tmp_path, code, hide=True)[1] == "ModuleNotFoundError"
    assert run(tmp_path, code, hide=False)[1] == "ok"


def test_a_grader_run_through_a_linked_environment_still_hides_the_frameworks(
    tmp_path, monkeypatch
):
    """A grader started as LINK/bin/python, LINK a link to its environment (the sandbox has only
    the resolved folders): the sandbox runs the resolved interpreter (`interpreter`), which
    reads the resolved site-packages, and that is where the frameworks are hidden."""
    real_prefix = Path(sys.prefix).resolve()
    site = sandbox._site_packages().relative_to(real_prefix)
    link = tmp_path / "venv"
    link.symlink_to(real_prefix, target_is_directory=True)
    monkeypatch.setattr(sys, "prefix", str(link))
    monkeypatch.setattr(sys, "executable", str(link / "bin" / Path(sys.executable).name))
    monkeypatch.setattr(sys, "path", [str(link / site), *sys.path])
    assert sandbox.interpreter() == str(real_prefix / "bin" / Path(sys.executable).name)
    assert sandbox._site_packages() == real_prefix / site
    job, out = tmp_path / "job", tmp_path / "out"
    job.mkdir()
    (job / "script.py").write_text(textwrap.dedent(report("import torch.nn")))
    for hide, expected in ((True, "ModuleNotFoundError"), (False, "ok")):  # ok: the control
        shutil.rmtree(out, ignore_errors=True)
        with sandbox.output_folder(out, SMALL) as folder:
            argv = [sandbox.interpreter(), "/job/script.py"]
            outcome = sandbox.run(job, folder, argv, SMALL, hide_frameworks=hide)
            assert (folder / "result").read_text() == expected, outcome.stderr


def test_the_start_signal_is_the_programs_own(tmp_path):
    """`run(start_token=...)`: the program gets a pipe of its own, says `started` on it and
    closes it; what runs afterwards cannot write there. A program that was never executed, or
    that ended before saying it, did not start."""
    say = (
        "import os, sys\n"
        "fd = int(sys.argv[1])\n"
        "os.write(fd, b'started\\n')\n"
        "os.close(fd)\n"
        "try:\n"
        "    os.write(fd, b'more')\n"
        "    open('/out/result', 'w').write('wrote after close')\n"
        "except OSError as err:\n"
        "    open('/out/result', 'w').write(type(err).__name__)\n"
    )
    cases = {
        "says it": ([sandbox.interpreter(), "/job/script.py", "@FD@"], True),
        "never runs": (["/nonexistent/python3", "/job/script.py", "@FD@"], False),
        "ends first": ([sandbox.interpreter(), "-c", "raise SystemExit(0)", "@FD@"], False),
    }
    for name, (argv, started) in cases.items():
        job, out = tmp_path / name / "job", tmp_path / name / "out"
        job.mkdir(parents=True)
        (job / "script.py").write_text(say)
        with sandbox.output_folder(out, SMALL) as out:
            outcome = sandbox.run(job, out, argv, SMALL, hide_frameworks=False, start_token="@FD@")
            assert outcome.started is started, (name, outcome.stderr)
            if started:
                assert (out / "result").read_text() == "OSError"
    (tmp_path / "plain").mkdir()
    outcome = run(tmp_path / "plain", report("1"))[0]
    assert outcome.started is None  # not asked for


# Learner code that looks for a way to read the start pipe: every pipe that any process it
# can see holds, read end or write end, opened again read-only through /proc and drained (only
# the processes whose command line carries MARKER when ONLY_MARKED: the unsandboxed control,
# which must not drain the test runner's own pipes). Were it to succeed, the runner's "started"
# would be gone and the submission would be a grader error, never a grade.
MARKER = "bnlab-start-pipe-grader"
DRAIN = f"""
import os
drained = []
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        if ONLY_MARKED and b'{MARKER}' not in open(f'/proc/{{pid}}/cmdline', 'rb').read():
            continue
        fds = os.listdir(f'/proc/{{pid}}/fd')
    except OSError:
        continue
    for fd in fds:
        try:
            if not os.readlink(f'/proc/{{pid}}/fd/{{fd}}').startswith('pipe:'):
                continue
            r = os.open(f'/proc/{{pid}}/fd/{{fd}}', os.O_RDONLY | os.O_NONBLOCK)
            drained.append(os.read(r, 64).decode())
        except OSError:
            pass
print('drained', [x for x in drained if x])
"""
GRADER = """
import json, sys
from pathlib import Path
from bnlab.grading import sandbox
use_sandbox, tmp = sys.argv[1] == 'sandboxed', Path(sys.argv[2])
job_dir = tmp / 'job'
job_dir.mkdir()
limits = sandbox.Limits(wall_s=60, cpu_s=60)
job = {'cells': [{'index': 0, 'kind': 'code', 'source': sys.stdin.read()}],
       'numpy_exercise': True}
with sandbox.output_folder(tmp / 'out', limits) as out:
    argv = [sandbox.interpreter(), '-m', 'bnlab.grading.sandbox_runner', '-', '/out', '@FD@']
    outcome = sandbox.run(job_dir, out, argv, limits, True, use_sandbox,
                          stdin_data=json.dumps(job).encode(), start_token='@FD@')
    cell = json.loads((out / 'cells' / '0.json').read_text())
print(json.dumps({'started': outcome.started, 'stdout': cell['stdout']}))
"""


def test_learner_code_cannot_take_back_the_runners_start_signal(tmp_path):
    """The real runner, with a learner cell that drains every pipe it can reach through /proc:
    in the sandbox it reaches no copy of the start pipe (its own pid namespace, another user,
    and bubblewrap's init holds none) and the runner's signal stands. The control,
    unsandboxed (`--unsafe-no-sandbox`, as the README says), finds the grader's read end and
    takes the signal back."""
    for mode, started in (("sandboxed", True), ("unsandboxed", False)):
        tmp = tmp_path / mode
        tmp.mkdir()
        proc = subprocess.run(
            [sys.executable, "-c", GRADER, mode, str(tmp), MARKER],
            input=f"ONLY_MARKED = {not started}\n{DRAIN}",
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if started:
            assert result["stdout"].strip() == "drained []", result  # found nothing to read
        else:
            assert "'started\\n'" in result["stdout"], result  # took it back
        assert result["started"] is started, (mode, result)


def test_wall_time_limit(tmp_path):
    code = "while True:\n    pass\n"
    outcome, _ = run(tmp_path, code, limits=sandbox.Limits(wall_s=3, cpu_s=60))
    assert outcome.timed_out and 2.5 < outcome.wall_s < 15
    assert "time limit" in outcome.limit_reason


def test_cpu_time_limit(tmp_path):
    code = "while True:\n    pass\n"
    outcome, _ = run(tmp_path, code, limits=sandbox.Limits(wall_s=30, cpu_s=2))
    assert not outcome.timed_out
    assert "CPU time" in outcome.limit_reason


def test_memory_limit(tmp_path):
    code = report("x = bytearray(3 * 2**30)")
    assert run(tmp_path, code, limits=sandbox.Limits(memory_bytes=2**30))[1] == "MemoryError"
    assert run(tmp_path, code, limits=sandbox.Limits(memory_bytes=8 * 2**30))[1] == "ok"


@pytest.mark.skipif(os.geteuid() != 0, reason="the process limit needs the root-run sandbox")
def test_process_limit(tmp_path):
    code = report(
        "import os, time\n"
        "        for _ in range(300):\n"
        "            if os.fork() == 0:\n"
        "                time.sleep(30); os._exit(0)"
    )
    assert run(tmp_path, code, limits=sandbox.Limits(processes=64))[1] == "BlockingIOError"
    assert run(tmp_path, code, limits=sandbox.Limits(processes=1024))[1] == "ok"


def _need_cgroups():
    if sandbox.cgroup_version() is None:
        if os.environ.get("CI") == "true" and os.geteuid() == 0:
            pytest.fail(f"cgroups unusable on this CI machine: {sandbox.cgroup_status()[1]}")
        pytest.skip(f"no usable cgroups here: {sandbox.cgroup_status()[1]}")


def test_memory_limit_counts_shared_mappings(tmp_path):
    """RLIMIT_DATA does not count a shared anonymous mapping; the submission's cgroup does."""
    _need_cgroups()
    code = report(
        "import mmap\n"
        "        m = mmap.mmap(-1, 1536 * 2**20, flags=mmap.MAP_SHARED)\n"
        "        for i in range(0, len(m), 4096):\n"
        "            m[i] = 1"
    )
    limits = sandbox.Limits(memory_bytes=2**30)
    outcome, result = run(tmp_path, code, limits=limits)
    assert result is None and outcome.memory_limit_hit, outcome
    assert "memory" in outcome.limit_reason
    off = sandbox.Limits(memory_bytes=2**30, cgroups=False)
    assert run(tmp_path, code, limits=off)[1] == "ok"  # per-process rlimits alone let it through


def test_memory_limit_holds_for_all_processes_together(tmp_path):
    """Three children of 600 MB each: under a per-process limit of 1 GiB every one fits."""
    _need_cgroups()
    code = """
    import os, time
    pids = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            block = b"\\x01" * (600 * 2**20)
            time.sleep(1.5)
            os._exit(0)
        pids.append(pid)
    codes = [os.waitpid(p, 0)[1] for p in pids]
    open("/out/result", "w").write("ok" if not any(codes) else "killed")
    """
    limits = sandbox.Limits(memory_bytes=2**30)
    outcome, result = run(tmp_path, code, limits=limits)
    assert result != "ok" and outcome.memory_limit_hit, (result, outcome)
    off = sandbox.Limits(memory_bytes=2**30, cgroups=False)
    assert run(tmp_path, code, limits=off)[1] == "ok"


def test_learner_code_yields_the_cpu_to_the_grader():
    """A submission's group weighs a quarter of a default group: when cores are contended,
    the grader's own processes (the judges, the primer computing the references) go first."""
    _need_cgroups()
    version = sandbox.cgroup_version()
    group = cgroups.Cgroup.create(version, memory_bytes=2**30, pids=64, cpu=0.9)
    try:
        if version == "v1":
            (d,) = [d for d in group.dirs if d.parent.name == "cpu"]
            assert (d / "cpu.shares").read_text().strip() == "256"
        else:
            (d,) = group.dirs
            assert (d / "cpu.weight").read_text().strip() == "25"
    finally:
        group.remove()


@pytest.mark.serial  # the control measures what the machine gives: it must have it to itself
def test_cpu_share_holds_for_all_processes_together(tmp_path):
    """Four busy processes for 2 s take about 2 cores' worth without the quota, and no more
    than the submission's share with it: a neighbour graded at the same time keeps its core."""
    _need_cgroups()
    code = """
    import os, time
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            t = time.time()
            while time.time() - t < 2:
                pass
            os._exit(0)
        pids.append(pid)
    for p in pids:
        os.waitpid(p, 0)
    t = os.times()
    open("/out/result", "w").write(str(t.children_user + t.children_system))
    """
    share = float(run(tmp_path, code, limits=sandbox.Limits(cpu_share=0.5))[1])
    free = float(run(tmp_path, code, limits=sandbox.Limits(cgroups=False))[1])
    assert share < 1.5, share  # 0.5 core for ~2 s
    assert free > 1.5 * share, (free, share)


def test_output_limit(tmp_path):
    """A flood is cut at the file-size limit (Python ignores SIGXFSZ: the write comes back
    short, the next one fails with EFBIG); the grader keeps only a tail of it."""
    code = """
    import os
    os.write(1, b"x" * (8 * 2**20))
    open("/out/result", "w").write("ok")
    """
    outcome, result = run(tmp_path, code, limits=sandbox.Limits(file_bytes=2**20))
    assert outcome.output_bytes == 2**20 and outcome.output_capped
    assert len(outcome.stdout) <= sandbox.Limits().output_chars
    outcome, result = run(tmp_path, code, limits=sandbox.Limits(file_bytes=64 * 2**20))
    assert outcome.output_bytes == 8 * 2**20 and not outcome.output_capped


FILL_BYTES = """
import os
written = 0
try:
    for i in range(FILES):
        with open(f"/out/f{i}", "wb") as f:
            for _ in range(8):
                f.write(b"x" * 2**20)
                f.flush()
                written += 2**20
except OSError as err:
    print(type(err).__name__)
print("written", written, flush=True)
"""


@pytest.fixture(params=["tmpfs", "watched"])
def out_mode(request, monkeypatch):
    """As root /out is a tmpfs; elsewhere a watched folder: both are tested here."""
    if request.param == "tmpfs" and os.geteuid() != 0:
        pytest.skip("the tmpfs needs root")
    if request.param == "watched":
        monkeypatch.setattr(sandbox, "_mount_tmpfs", lambda path, limits: False)
    return request.param


def test_out_is_limited_in_bytes(tmp_path, out_mode):
    """96 MB written to /out in files of 8 MB (each under the file-size limit): with a 32 MB
    limit on /out at most that much lands (a tmpfs: the write fails with ENOSPC), or the
    submission is stopped soon after (a watched folder); without it, all of it does."""
    limits = sandbox.Limits(out_bytes=32 * 2**20)
    usage = []
    if out_mode == "tmpfs":
        outcome, _ = run(tmp_path, "FILES = 12" + FILL_BYTES, limits=limits, usage=usage)
        assert outcome.disk_limit_hit, outcome
        assert "OSError" in outcome.stdout and usage[0][0] <= 32 * 2**20, (outcome, usage)
    else:  # polled: what lands is the limit plus what is written in one interval; 2 GB tried
        outcome, _ = run(tmp_path, "FILES = 256" + FILL_BYTES, limits=limits, usage=usage)
        assert outcome.disk_limit_hit, outcome
        assert outcome.returncode != 0 and "/out" in outcome.limit_reason
        assert "written" not in outcome.stdout and usage[0][0] < 2**30, (outcome, usage)
    usage = []
    code = "FILES = 12" + FILL_BYTES
    outcome, _ = run(tmp_path, code, limits=sandbox.Limits(out_bytes=0), usage=usage)
    assert "written 100663296" in outcome.stdout and not outcome.disk_limit_hit
    assert usage[0][0] >= 96 * 2**20


FILL_FILES = """
import os
made = 0
try:
    for i in range(20_000):
        open(f"/out/e{i}", "wb").close()
        made += 1
except OSError as err:
    print(type(err).__name__)
print("made", made, flush=True)
"""


def test_out_is_limited_in_files(tmp_path, out_mode):
    """20,000 empty files (no byte limit notices them): /out takes at most out_files."""
    usage = []
    outcome, _ = run(tmp_path, FILL_FILES, limits=sandbox.Limits(out_files=500), usage=usage)
    assert outcome.disk_limit_hit, outcome
    if out_mode == "tmpfs":
        assert "OSError" in outcome.stdout and usage[0][1] <= 500, (outcome, usage)
    else:
        assert outcome.returncode != 0 and "made 20000" not in outcome.stdout
    usage = []
    outcome, _ = run(tmp_path, FILL_FILES, limits=sandbox.Limits(out_bytes=0), usage=usage)
    assert "made 20000" in outcome.stdout and usage[0][1] == 20_000


def test_output_files_cannot_be_replaced_from_inside(tmp_path):
    """stdout and stderr are unnamed files outside /out: a FIFO or a link put in /out under
    any name is never opened by the grader, and what the process printed comes back."""
    code = """
    import os
    print("printed", flush=True)
    for name in (".stdout", ".stderr", "stdout", "stderr"):
        try:
            os.unlink(f"/out/{name}")
        except FileNotFoundError:
            pass
        os.mkfifo(f"/out/{name}")
    os.symlink("/etc/passwd", "/out/.log")
    """
    outcome, _ = run(tmp_path, code)
    assert outcome.returncode == 0 and outcome.stdout == "printed\n", outcome


def test_missing_bubblewrap_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="--unsafe-no-sandbox"):
        run(tmp_path, "pass")


# ----------------------------------------------------------------------------- untrusted /out
def test_untrusted_reader_refuses_what_a_plain_read_would_hang_or_drown_on(tmp_path):
    """Each refusal beside what the unprotected read does with the same file."""
    import threading

    from bnlab.grading import untrusted

    fifo = tmp_path / "progress.jsonl"
    os.mkfifo(fifo)
    blocked = threading.Event()

    def plain_open():
        blocked.set()
        with open(fifo, "rb"):  # blocks until a writer appears: the old grader hung here
            pass

    t = threading.Thread(target=plain_open, daemon=True)
    t.start()
    blocked.wait()
    t.join(0.5)
    assert t.is_alive()  # the unprotected read is still stuck
    with pytest.raises(untrusted.Untrusted, match="not a regular file"):
        untrusted.read_bytes(fifo, 1000)
    with open(fifo, "wb"):  # release the stuck thread
        pass

    link = tmp_path / "3.json"
    link.symlink_to("/dev/zero")
    assert link.stat().st_size == 0  # a size check alone lets it through
    with pytest.raises(untrusted.Untrusted, match="following links"):
        untrusted.read_bytes(link, 1000)


def test_npz_is_checked_before_anything_is_decompressed(tmp_path):
    import io
    import zipfile

    from bnlab.checks.harness import Probe
    from bnlab.grading import untrusted

    folder = tmp_path / "probe"
    Probe({"a.out": np.arange(3.0), "a.dtype": np.asarray("float64")}).save(folder)
    loaded = untrusted.load_probe(folder)
    assert loaded.arrays["a.out"].tolist() == [0.0, 1.0, 2.0]
    assert str(loaded.arrays["a.dtype"]) == "float64"

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (2**24,)}
    )
    with zipfile.ZipFile(folder / "arrays.npz", "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("out.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            for _ in range(16):
                f.write(bytes(2**23))
    assert (folder / "arrays.npz").stat().st_size < 1_000_000  # 128 MiB inside
    with pytest.raises(untrusted.Untrusted, match="declares over"):
        untrusted.load_probe(folder)

    with zipfile.ZipFile(folder / "arrays.npz", "w") as z:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.zeros(0))
        for i in range(untrusted.MAX_MEMBERS + 1):
            z.writestr(f"m{i}.npy", buf.getvalue())
    with pytest.raises(untrusted.Untrusted, match="members"):
        untrusted.load_probe(folder)

    lying = io.BytesIO()  # a header that declares 10**12 elements over a few bytes of data
    np.lib.format.write_array_header_1_0(
        lying, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    with zipfile.ZipFile(folder / "arrays.npz", "w") as z:
        z.writestr("x.npy", lying.getvalue() + bytes(64))
    with pytest.raises(untrusted.Untrusted, match="declares more data"):
        untrusted.load_probe(folder)


def test_clean_makes_learner_text_writable():
    from bnlab.grading import untrusted

    value = {"out": ["ok", "\ud800"], "name": os.fsdecode(b"notes-\xff.txt")}
    cleaned = untrusted.clean(value)
    json.dumps(cleaned, ensure_ascii=False).encode("utf-8")  # no UnicodeEncodeError
    assert cleaned["out"][0] == "ok"


def test_groups_of_a_dead_grader_are_swept_and_a_live_ones_kept():
    """A grader killed with kill -9 cannot remove its cgroups: the next grading process does,
    killing what is left in them, and leaves alone the groups of graders that still run."""
    import subprocess

    from bnlab.grading import cgroups

    _need_cgroups()
    version = sandbox.cgroup_version()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer exists
    name = f"{cgroups.PREFIX}-{gone.pid}-0"  # as a grader with that pid would have named it
    parents = ["memory", "pids", "cpu"] if version == "v1" else [""]
    stale = cgroups.Cgroup(version, [cgroups.ROOT / c / name for c in parents])
    live = cgroups.Cgroup.create(version, 64 * 2**20, 8, 1.0)
    try:
        for d in stale.dirs:
            d.mkdir()
        orphan = subprocess.Popen(["sleep", "60"])
        for f in stale.procs_files():
            Path(f).write_text(str(orphan.pid))
        cgroups.sweep_stale(version)
        assert orphan.wait(timeout=10) == -9  # what was left in the dead grader's group
        assert not any(d.exists() for d in stale.dirs)
        assert all(d.exists() for d in live.dirs)  # this process's group is its own
    finally:
        live.remove()
        stale.remove()


KILLED_GRADER = """
import os, signal, sys, tempfile
from pathlib import Path
from bnlab.grading import sandbox
tmp = tempfile.mkdtemp(prefix=sandbox.work_prefix(), dir=sys.argv[1])
with sandbox.output_folder(Path(tmp) / "out", sandbox.Limits()) as out:
    (out / "probe.bin").write_bytes(os.urandom(1 << 20))
    print(tmp, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup runs
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the /out tmpfs is mounted as root only")
def test_what_a_killed_grader_left_mounted_is_swept_and_a_live_ones_kept(tmp_path):
    """A grader killed with kill -9 (or by the out-of-memory killer) leaves its work folder and
    the /out tmpfs mounted in it, whose files stay in memory: the next grading process
    unmounts and removes them, and leaves alone those of graders that still run."""
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_GRADER, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr
    stale = Path(killed.stdout.strip())
    owner = sandbox._work_owner(stale.name)  # the killed grader's pid, in the name
    assert owner is not None and not cgroups.pid_alive(owner)
    assert sandbox._mounts_under(stale) == [str(stale / "out")]  # what the kill left
    # Names any local user can make in a shared temporary folder: not a grader's (left alone,
    # and never an error that would stop grading), and a link named as a dead grader's.
    odd = [f"{sandbox.WORK_PREFIX}{x}-x" for x in ("notapid", "\u00b2", "9" * 20)]
    for name in odd:
        (tmp_path / name).mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / f"{sandbox.WORK_PREFIX}{owner}-link").symlink_to(target)
    alive = subprocess.Popen(["sleep", "60"])  # a grader that still runs, by its pid
    theirs = tmp_path / f"{sandbox.WORK_PREFIX}{cgroups.owner_tag(alive.pid)}-x"
    ours = tmp_path / f"{sandbox.work_prefix()}y"
    # The dead grader's pid in another pid namespace (another container sharing /tmp): that
    # pid means nothing here, so the folder is not taken for a dead grader's.
    foreign = tmp_path / f"{sandbox.WORK_PREFIX}{owner}n{int(cgroups.pid_namespace()) + 1}-x"
    foreign.mkdir()
    try:
        for folder in (theirs, ours):
            folder.mkdir()
        with sandbox.output_folder(theirs / "out", sandbox.Limits()):
            assert sandbox.sweep_stale_work(tmp_path) == [stale]
            assert not stale.exists() and sandbox._mounts_under(stale) == []
            assert sandbox._mounts_under(theirs) == [str(theirs / "out")]
            assert ours.exists() and all((tmp_path / name).exists() for name in odd)
            assert foreign.exists()
            assert (tmp_path / f"{sandbox.WORK_PREFIX}{owner}-link").is_symlink()
            assert target.exists()
            alive.kill()
            alive.wait()
            subprocess.run(["umount", "-l", str(theirs / "out")], check=True)
            assert sandbox.sweep_stale_work(tmp_path) == [theirs]  # now it is a dead one's
    finally:
        alive.kill()
        alive.wait()
        for folder in (theirs, stale):
            subprocess.run(["umount", "-l", str(folder / "out")], capture_output=True)


def test_a_cancelled_sandbox_is_stopped_at_once_and_a_later_one_never_starts(tmp_path):
    """A grading run stopped early (Ctrl-C) sets `cancel`: the sandbox running then is killed
    at once, with everything it started, rather than left to its time limit (here 20 s), and
    `run` raises `Cancelled` (no outcome, so no grade); a sandbox asked for afterwards never
    starts. Until `cancel` is set the program runs on."""
    job, out = tmp_path / "job", tmp_path / "out"
    job.mkdir()
    (job / "script.py").write_text(
        "import subprocess, time\n"
        "subprocess.Popen(['sleep', '61.25'])\n"  # a child of its own, killed with it
        "open('/out/ready', 'w').close()\n"
        "time.sleep(60)\n"
    )
    argv = [sys.executable, "/job/script.py"]
    cancel = threading.Event()
    raised: list[BaseException] = []
    with sandbox.output_folder(out, SMALL) as out:

        def grade():
            try:
                sandbox.run(job, out, argv, SMALL, False, cancel=cancel)
            except BaseException as err:  # noqa: BLE001 - what the test looks at
                raised.append(err)

        worker = threading.Thread(target=grade)
        worker.start()
        deadline = time.monotonic() + 15
        while not (out / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (out / "ready").exists(), raised
        time.sleep(1)
        assert worker.is_alive()  # not cancelled: it runs on
        cancel.set()
        stopped = time.monotonic()
        worker.join(10)
        assert not worker.is_alive() and time.monotonic() - stopped < 3
        assert len(raised) == 1 and isinstance(raised[0], sandbox.Cancelled), raised
        assert subprocess.run(["pgrep", "-f", "sleep 61.25"]).returncode == 1  # none left
        (out / "ready").unlink()
        with pytest.raises(sandbox.Cancelled):  # asked for after the stop: never started
            sandbox.run(job, out, argv, SMALL, False, cancel=cancel)
        time.sleep(0.5)
        assert not (out / "ready").exists()


def test_runner_ends_without_running_learner_exit_handlers(tmp_path):
    """The runner ends with os._exit once its files are written: an atexit handler or finalizer
    a learner cell registered never runs after the notebook "finished" (and torch's teardown,
    0.8 s, is skipped)."""
    out = tmp_path / "out"
    out.mkdir()
    late = tmp_path / "late.txt"
    code = f"import atexit\natexit.register(lambda: open({str(late)!r}, 'w').write('late'))\n"
    job = {"cells": [{"index": 0, "kind": "code", "source": code}], "numpy_exercise": True}
    proc = subprocess.run(
        [sys.executable, "-m", "bnlab.grading.sandbox_runner", "-", str(out)],
        input=json.dumps(job).encode(),
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(x) for x in (out / "progress.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "finished"
    assert not late.exists()
