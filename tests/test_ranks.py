"""The 2-process gloo group the synchronized-BN checks run in (bnlab.checks.ranks): whatever a
rank does (raise, hang in a collective, exit, write to its stderr), the caller gets one answer
per rank, in bounded time, and nothing on its own output."""

from __future__ import annotations

import os
import time

import numpy as np

from bnlab.checks import ranks
from bnlab.checks.harness import Probe


def _all_reduce_rank(rank, world_size):
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(rank + 1)])
    dist.all_reduce(t)
    return Probe({"sum": t.numpy().copy(), "world": np.asarray(world_size)})


def test_ranks_form_one_group_and_report_in_rank_order():
    results = ranks.run_ranks(_all_reduce_rank, world_size=2, timeout=20)
    assert [float(r.arrays["sum"][0]) for r in results] == [3.0, 3.0]
    assert all(int(r.arrays["world"]) == 2 and not r.errors for r in results)


def _rank1_raises(rank, world_size):
    import torch
    import torch.distributed as dist

    if rank == 1:
        raise ValueError("learner bug")
    dist.all_reduce(torch.ones(1))  # waits for rank 1, which never comes
    return Probe()


def test_a_failing_rank_is_named_and_the_waiting_one_stopped_quickly():
    start = time.monotonic()
    results = ranks.run_ranks(_rank1_raises, world_size=2, timeout=20)
    elapsed = time.monotonic() - start
    assert results[1].errors == {"rank 1": "ValueError: learner bug"}
    assert "after rank 1 failed" in results[0].errors["rank 0"]
    assert elapsed < 20, elapsed  # the grace period, not the collective's timeout


def _mismatched(rank, world_size):
    import torch
    import torch.distributed as dist

    for _ in range(rank + 1):  # rank 1 calls one collective more than rank 0
        dist.all_reduce(torch.ones(3))
    return Probe({"done": np.asarray(True)})


def test_mismatched_collectives_end_within_the_deadline():
    start = time.monotonic()
    results = ranks.run_ranks(_mismatched, world_size=2, timeout=3)
    assert time.monotonic() - start < 3 + ranks.DEADLINE_SLACK + 5
    assert "rank 1" in results[1].errors or "rank 0" in results[0].errors


def _exits_and_writes(rank, world_size):
    os.write(2, b"noise on the rank's stderr\n")
    os.write(1, b"noise on the rank's stdout\n")
    print("printed by a rank")
    if rank == 0:
        os._exit(3)
    return Probe({"ok": np.asarray(True)})


def test_a_rank_that_exits_is_reported_and_rank_output_never_reaches_the_caller(capfd):
    results = ranks.run_ranks(_exits_and_writes, world_size=2, timeout=10)
    assert results[0].errors["rank 0"].startswith("the rank's process ended (exit code 3)")
    assert bool(results[1].arrays["ok"])
    out, err = capfd.readouterr()
    assert "noise" not in out + err and "printed by a rank" not in out + err


def test_loopback_interface_is_found():
    assert ranks.loopback_interface() in {name for _, name in __import__("socket").if_nameindex()}
