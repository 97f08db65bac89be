"""Inside the sandbox: run a learner's notebook cells in order and probe at each test cell.

    python -m bnlab.grading.sandbox_runner /job /out

/job/job.json lists the code cells (the learner's answers and the course's locked cells) and,
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


def main(job_dir: str, out_dir: str) -> int:
    out = Path(out_dir)
    job = json.loads((Path(job_dir) / "job.json").read_text())
    (out / "cells").mkdir(exist_ok=True)
    progress = open(out / "progress.jsonl", "a", buffering=1)  # noqa: SIM115

    from bnlab.checks.harness import FRAMEWORKS, Probe

    imports = _FrameworkImports(FRAMEWORKS)
    if job.get("numpy_exercise"):
        sys.meta_path.insert(0, imports)

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance(colors="NoColor")
    shell.showtraceback = _plain_traceback(shell)
    from bnlab import checks

    real_stdout, real_stderr = sys.stdout, sys.stderr
    for cell in job["cells"]:
        progress.write(json.dumps({"cell": cell["index"], "event": "start"}) + "\n")
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
                    probe = _probe(checks, shell.user_ns, item, Probe)
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
        progress.write(json.dumps({"cell": cell["index"], "event": "done"}) + "\n")
    progress.write(json.dumps({"event": "finished"}) + "\n")
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


def _plain_traceback(shell):
    def show(*args, **kwargs):
        etype, value, tb = sys.exc_info()
        if etype is not None:
            sys.stdout.write("".join(traceback.format_exception_only(etype, value)))

    return show


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main(sys.argv[1], sys.argv[2]))
