"""Run a function in a small `torch.distributed` process group (gloo, loopback only).

    results = run_ranks(work, world_size=2, timeout=30.0)   # work(rank, world_size) -> Probe

Each rank is a fork of the calling process, so a learner's classes defined in a notebook (or
in the grading sandbox's namespace) reach the ranks without pickling, and the sandbox's
KernelBlock, which took the frameworks' normalizations away, holds in them too. The ranks meet
through a FileStore in a fresh temporary folder and talk over the loopback interface: nothing
leaves the machine (in the grading sandbox, nothing but loopback exists).

Whatever a rank does, the caller gets one Probe per rank back: a rank that raises, deadlocks
in a collective (gloo's timeout), exits or dies is reported as an error of that rank, and every
rank still running at the deadline is killed. A rank's output, at the file-descriptor level
too, is kept away from the caller's stdout and stderr (nbgrader scores a test cell with any
stderr as failed); the ranks' refused framework calls come back as framework calls.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta

from bnlab.checks.harness import Probe

DEADLINE_SLACK = 15.0  # seconds past the collectives' timeout before a rank is killed
RANK_MESSAGE = "the rank's process"  # how the messages written here begin (harness.OWN_MESSAGES)
GRACE = 3.0  # seconds the other ranks get once one has failed


def loopback_interface() -> str:
    """The loopback interface's name ("lo" on Linux, "lo0" on macOS)."""
    names = [name for _, name in socket.if_nameindex()]
    for name in ("lo", "lo0"):
        if name in names:
            return name
    return next((n for n in names if n.startswith("lo")), "lo")


def _child(rank, world_size, store_path, timeout, work, conn) -> None:
    """One rank: silence its output, join the group, run `work`, send the probe's data."""
    import faulthandler

    faulthandler.disable()  # it writes to a copy of the caller's stderr, kept by pytest/kernels
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    import io
    import sys

    sys.stdout = sys.stderr = io.StringIO()
    payload: dict = {"arrays": {}, "errors": {}, "framework_calls": []}
    try:
        from bnlab.checks import harness
        from bnlab.core.frameworks import import_torch

        harness.REFUSED_CALLS.clear()
        torch = import_torch()
        torch.set_num_threads(1)
        dist = torch.distributed
        os.environ["GLOO_SOCKET_IFNAME"] = loopback_interface()
        store = dist.FileStore(store_path, world_size)
        dist.init_process_group(
            "gloo",
            store=store,
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout),
        )
        try:
            probe = work(rank, world_size)
        finally:
            # When this rank stopped: the first rank to fail is the one the others waited for.
            payload["finished"] = time.monotonic()
            # Learner code may have destroyed the group already.
            if dist.is_initialized():
                dist.destroy_process_group()
        calls = list(probe.framework_calls)
        calls += [c for c in harness.REFUSED_CALLS if c not in calls]
        payload.update(arrays=dict(probe.arrays), errors=dict(probe.errors), framework_calls=calls)
    except BaseException as err:  # noqa: BLE001 - whatever happens, the parent hears of it
        payload["errors"] = {f"rank {rank}": f"{type(err).__name__}: {err}"[:500]}
        payload.setdefault("finished", time.monotonic())
    try:
        conn.send(payload)
    except Exception as err:  # noqa: BLE001 - e.g. an array that does not pickle
        conn.send({"arrays": {}, "errors": {f"rank {rank}": f"result not sent: {err}"[:500]}})
    finally:
        conn.close()
        os._exit(0)  # never the parent's atexit handlers (a Jupyter kernel's, the sandbox's)


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def run_ranks(
    work: Callable[[int, int], Probe], world_size: int = 2, timeout: float = 30.0
) -> list[Probe]:
    """Run `work(rank, world_size)` in `world_size` forked ranks of a gloo group.

    Returns one Probe per rank, in rank order; a rank that did not report has an error saying
    why (raised, timed out, died)."""
    import multiprocessing  # here: importing it registers __mp_main__ in every learner kernel

    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="bnlab-ranks-") as folder:
        store_path = os.path.join(folder, "store")
        pipes, procs = [], []
        for rank in range(world_size):
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_child,
                args=(rank, world_size, store_path, timeout, work, send),
                daemon=True,
            )
            proc.start()
            send.close()
            pipes.append(receive)
            procs.append(proc)
        payloads = _collect(pipes, procs, timeout)
    return [
        Probe(
            dict(payload.get("arrays", {})),
            {str(k): str(v) for k, v in dict(payload.get("errors", {})).items()},
            [str(c) for c in payload.get("framework_calls", [])],
        )
        for payload in payloads
    ]


def _collect(pipes, procs, timeout: float) -> list[dict]:
    """Each rank's payload; once a rank has failed, the others get GRACE seconds (they are
    most likely waiting for it in a collective) and are then stopped."""
    from multiprocessing.connection import wait

    deadline = time.monotonic() + timeout + DEADLINE_SLACK
    payloads: dict[int, dict] = {}
    waiting = dict(enumerate(pipes))
    while waiting and time.monotonic() < deadline:
        ready = wait(list(waiting.values()), max(0.0, deadline - time.monotonic()))
        for rank, receive in list(waiting.items()):
            if receive not in ready:
                continue
            try:
                payloads[rank] = receive.recv()
            except (EOFError, OSError):
                payloads[rank] = {"arrays": {}, "errors": {}}
            del waiting[rank]
            if payloads[rank].get("errors"):
                deadline = min(deadline, time.monotonic() + GRACE)
    failed = [r for r, p in payloads.items() if p.get("errors")]
    first_failed = min(failed, key=lambda r: payloads[r].get("finished", 0.0), default=None)
    for rank in failed:
        if rank != first_failed:
            # Most likely a consequence (a collective whose peer had gone): say so.
            payloads[rank]["errors"] = {
                k: f"after rank {first_failed} failed: {v}"
                for k, v in payloads[rank]["errors"].items()
            }
    for proc in procs:
        proc.join(max(0.0, min(1.0, deadline - time.monotonic())))
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)
    for rank, proc in enumerate(procs):
        payload = payloads.get(rank)
        if payload is not None and (payload.get("errors") or payload.get("arrays")):
            continue
        if rank in waiting and first_failed is not None:
            why = (
                f"{RANK_MESSAGE} was stopped after rank {first_failed} failed (it was most "
                "likely waiting for that rank in a collective)"
            )
        elif rank in waiting:
            why = (
                f"{RANK_MESSAGE} did not finish within {timeout + DEADLINE_SLACK:.0f} s: "
                "every rank must call the same collectives, in the same order"
            )
        else:
            why = f"{RANK_MESSAGE} ended ({_exit_status(proc.exitcode)}) without reporting"
            if proc.exitcode == -signal.SIGABRT:
                why += (
                    ": gloo aborts a process whose collectives do not pair up with the other "
                    "ranks' (a different number of calls, or tensors of different sizes)"
                )
        payloads[rank] = {"arrays": {}, "errors": {f"rank {rank}": why}}
    return [payloads[rank] for rank in range(len(procs))]
