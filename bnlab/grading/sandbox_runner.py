"""Inside the sandbox: run a learner's notebook cells in order and probe at each test cell.

    python -m bnlab.grading.sandbox_runner - /out      (the job on stdin, as the grader runs it)
    python -m bnlab.grading.sandbox_runner JOB_DIR /out  (JOB_DIR/job.json)

The job lists the code cells (the learner's answers and the course's locked cells) and,
for each test cell, the probes to take: a check id, the names of the learner's functions and a
seed. Nothing here judges anything. The only things written are data: per-cell output text
(capped), a progress log, and each probe as arrays.npz + messages.json
(bnlab.checks.harness.Probe).
The grader outside decides what any of it is worth, so whatever learner code does to this
process (patching numpy, this module, builtins; exiting; forging files in /out) can only change
the arrays it hands back.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
import traceback
from pathlib import Path

CAP = 4000  # characters of output kept per cell


class _Capped(io.TextIOBase):
    def __init__(self):
        self.parts: list[str] = []
        self.size = 0

    def writable(self):
        return True

    def write(self, s):
        if self.size < CAP:
            self.parts.append(s[: CAP - self.size])
        self.size += len(s)
        return len(s)

    def text(self) -> str:
        out = "".join(self.parts)
        return out + (f"\n... ({self.size - CAP} more characters)" if self.size > CAP else "")


class _FrameworkImports:
    """Note learner attempts to import a deep-learning framework in a NumPy exercise (the
    packages are hidden by the sandbox; this only turns the ImportError into a clear reason)."""

    def __init__(self, names):
        self.names = names
        self.seen: list[str] = []

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.split(".", 1)[0]
        if top in self.names and f"import {top}" not in self.seen:
            self.seen.append(f"import {top}")
        return None


# Substrings of the operators and functions that compute a normalization for the learner.
KERNEL_NAMES = (
    "batch_norm",
    "batchnorm",
    "layer_norm",
    "layernorm",
    "group_norm",
    "groupnorm",
    "instance_norm",
    "instancenorm",
)
_KERNEL_KEYS = ("CPU", "CUDA", "CompositeExplicitAutograd", "CompositeImplicitAutograd")


class KernelBlock:
    """While a graded probe runs, the frameworks' own normalizations do not exist.

    The in-process guard (bnlab.checks.harness.FrameworkGuard) only *records* calls, from the
    thread it runs in, through a hook the learner can remove; it cannot be what decides whether
    a PyTorch/Keras answer wrapped the built-in batch norm. This block takes the kernels away
    instead, for every thread and every reference the learner may hold:

    * PyTorch: every `aten::*norm*` operator of the batch/layer/group/instance family gets a
      kernel that raises, registered with the dispatcher (`torch.library`) for the CPU, CUDA
      and composite keys, so `F.batch_norm`, `nn.BatchNorm*`, `torch.ops.aten.*` and the
      autograd formulas all fail, from any thread, however they were imported or renamed;
    * the Python implementations of the same operations (torch's decompositions and refs,
      `tf.nn.batch_normalization`, `tf.nn.fused_batch_norm`, `keras.ops.batch_normalization`,
      the Keras normalization layers' methods) have their code replaced in place, so a
      reference taken earlier, under any name, runs the refusal.

    Everything is restored when the probe ends (the notebook's own comparison cells may use
    the real layers). Each refused call is recorded in `harness.REFUSED_CALLS`.
    """

    def __init__(self):
        self._library = None
        self._swapped: list[tuple] = []
        self._ids: set[int] = set()

    @staticmethod
    def _refusal(name: str):
        from bnlab.checks import harness

        def refuse(*args, **kwargs):
            harness.note_refused(name)
            raise RuntimeError(harness.BLOCKED_MESSAGE.format(name=name))

        return refuse

    def __enter__(self):
        import warnings

        with warnings.catch_warnings():  # deprecated attributes warn when looked at
            warnings.simplefilter("ignore")
            if "torch" in sys.modules:
                self._block_torch(sys.modules["torch"])
            for module_name, module in list(sys.modules.items()):
                top = module_name.split(".", 1)[0]
                if top in ("torch", "tensorflow", "keras", "tf_keras") and module is not None:
                    self._swap_functions(module_name, module)
        return self

    def _block_torch(self, torch) -> None:
        library = torch.library.Library("aten", "IMPL")
        has_kernel = torch._C._dispatch_has_kernel_for_dispatch_key
        for op in torch._C._dispatch_get_all_op_names():
            if not op.startswith("aten::") or not any(k in op for k in KERNEL_NAMES):
                continue
            for key in _KERNEL_KEYS:
                if has_kernel(op, key):
                    library.impl(op[len("aten::") :], self._refusal(op), key)
        self._library = library

    def _swap_functions(self, module_name: str, module) -> None:
        import types

        try:
            members = list(vars(module).items())
        except TypeError:
            return
        # A module about normalization (torch.nn.modules.batchnorm, keras' normalization
        # layers): everything defined there; elsewhere: what is named after a normalization.
        whole = any(k in module_name.rsplit(".", 1)[-1].lower() for k in KERNEL_NAMES)
        for attr, value in members:
            own = getattr(value, "__module__", None) == module_name
            if not (whole and own) and not any(k in attr.lower() for k in KERNEL_NAMES):
                continue
            if isinstance(value, type):  # a normalization layer: all of its own methods
                if not str(getattr(value, "__module__", "")).startswith(module_name[:5]):
                    continue
                targets = [f for f in vars(value).values() if callable(f)]
            elif callable(value):
                targets = [value]
            else:
                continue
            for target in targets:
                fn, depth = target, 0
                while fn is not None and depth < 10:  # the decorated function and what it wraps
                    if (
                        isinstance(fn, types.FunctionType)
                        and not fn.__code__.co_freevars
                        and id(fn) not in self._ids
                    ):
                        self._ids.add(id(fn))
                        self._swapped.append((fn, fn.__code__))
                        fn.__code__ = _refusal_code(f"{module_name}.{attr}")
                    fn, depth = getattr(fn, "__wrapped__", None), depth + 1

    def __exit__(self, *exc):
        for fn, code in reversed(self._swapped):
            fn.__code__ = code
        self._swapped.clear()
        self._ids.clear()
        if self._library is not None:
            self._library._destroy()
            self._library = None
        return False


def _refusal_code(label: str):
    """A code object (no free variables, so it fits any plain function) that records `label`
    and raises the refusal."""
    namespace: dict = {}
    exec(  # noqa: S102 - trusted constant source, only the label varies (repr'd)
        "def refuse(*args, **kwargs):\n"
        # not this module: it runs as __main__, a name IPython gives the learner's namespace
        "    from bnlab.checks import harness\n"
        f"    harness.note_refused({label!r})\n"
        f"    raise RuntimeError(harness.BLOCKED_MESSAGE.format(name={label!r}))\n",
        namespace,
    )
    return namespace["refuse"].__code__


def _read_job(source: str) -> dict:
    """The job, from stdin ("-": read to the end, then fd 0 becomes /dev/null, so learner code
    finds nothing there) or from SOURCE/job.json."""
    if source != "-":
        return json.loads((Path(source) / "job.json").read_text())
    with os.fdopen(os.dup(0), "rb") as f:
        data = f.read()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return json.loads(data.decode("utf-8"))


def _event(progress, **fields) -> None:
    """One progress line. `t` (CLOCK_MONOTONIC, which the sandbox shares with the host) is for
    benchmarks only (bench/bench_grading.py): the grader decides nothing from it."""
    progress.write(json.dumps({**fields, "t": time.monotonic()}) + "\n")


def main(job_source: str, out_dir: str, start_fd: int | None = None) -> int:
    out = Path(out_dir)
    job = _read_job(job_source)
    (out / "cells").mkdir(exist_ok=True)
    progress = open(out / "progress.jsonl", "a", buffering=1)  # noqa: SIM115
    _event(progress, event="started")

    from bnlab import checks
    from bnlab.checks.harness import FRAMEWORKS, Probe

    for cell in job["cells"]:  # this job's check modules, loaded before any learner code runs
        for item in cell.get("probes", []):
            checks.CHECKS[item["check"]].module  # noqa: B018 - the import is the point

    imports = _FrameworkImports(FRAMEWORKS)
    if job.get("numpy_exercise"):
        sys.meta_path.insert(0, imports)

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    # Cells run with store_history=False: no history database to open (12 ms a submission).
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(colors="NoColor", config=config)
    shell.showtraceback = _plain_traceback(shell)
    if start_fd is not None:
        # To the grader, on a pipe of its own, once the runner's own setup is done and before
        # any learner code runs: a failure from here on is the submission's, one before it
        # the grader's (retried, never a zero). Closed at once: learner code cannot write to
        # it, and the read end never enters the sandbox.
        try:
            os.write(start_fd, b"started\n")
        finally:
            os.close(start_fd)
    real_stdout, real_stderr = sys.stdout, sys.stderr
    for cell in job["cells"]:
        _event(progress, cell=cell["index"], event="start", kind=cell["kind"])
        buffer = _Capped()
        sys.stdout = sys.stderr = buffer
        error = None
        try:
            if cell["kind"] == "code":
                result = shell.run_cell(cell["source"], store_history=False, silent=False)
                if not result.success:
                    err = result.error_in_exec or result.error_before_exec
                    error = f"{type(err).__name__}: {err}"[:500]
            else:
                for item in cell["probes"]:
                    if job.get("numpy_exercise"):
                        probe = _probe(checks, shell.user_ns, item, Probe)
                    else:
                        probe = _blocked_probe(checks, shell.user_ns, item, Probe)
                    if probe.errors:  # most likely because the hidden framework was missing
                        for attempt in imports.seen:
                            if attempt not in probe.framework_calls:
                                probe.framework_calls.append(attempt)
                    probe.save(out / "probes" / item["key"])
        except BaseException as err:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, anything
            error = f"{type(err).__name__}: {err}"[:500]
        finally:
            sys.stdout, sys.stderr = real_stdout, real_stderr
        record = {"stdout": buffer.text(), "error": error}
        (out / "cells" / f"{cell['index']}.json").write_text(json.dumps(record))
        _event(progress, cell=cell["index"], event="done")
    _event(progress, event="finished")
    progress.close()
    return 0


def _probe(checks, namespace, item, Probe):
    spec = checks.CHECKS[item["check"]]
    missing = [n for n in item["names"] if n not in namespace]
    if missing:
        return Probe(
            errors={"setup": f"NameError: {', '.join(missing)} is not defined in the notebook"}
        )
    learner = [namespace[n] for n in item["names"]]
    try:
        cases = spec.module.cases(spec.prop, int(item["seed"]))
        return spec.module.probe(*learner, cases)
    except BaseException as err:  # noqa: BLE001 - a learner object can break the probe itself
        return Probe(errors={"probe": f"{type(err).__name__}: {err}"[:500]})


def _blocked_probe(checks, namespace, item, Probe):
    """A framework exercise's probe, run with the frameworks' normalizations taken away; the
    refused calls are recorded as framework calls (whatever the learner did to the guard)."""
    from bnlab.checks import harness

    harness.REFUSED_CALLS.clear()
    try:
        with KernelBlock():
            probe = _probe(checks, namespace, item, Probe)
    except BaseException as err:  # noqa: BLE001 - the block itself must not stop the run
        return Probe(errors={"probe": f"{type(err).__name__}: {err}"[:500]})
    for name in harness.REFUSED_CALLS:
        if name not in probe.framework_calls:
            probe.framework_calls.append(name)
    return probe


def _plain_traceback(shell):
    def show(*args, **kwargs):
        etype, value, tb = sys.exc_info()
        if etype is not None:
            sys.stdout.write("".join(traceback.format_exception_only(etype, value)))

    return show


if __name__ == "__main__":
    os.umask(0o022)
    status = main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)
    # Everything is written and closed. Ending here skips the interpreter's teardown (0.8 s
    # per submission once torch is loaded, bench/RESULTS.md) and any atexit handler or
    # finalizer the learner registered, which would otherwise run after "finished".
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
