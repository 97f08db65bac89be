"""What the grader reads back from a sandbox: its text never passes for the grader's own words,
no link leads it outside /out, and names that are bytes rather than text never stop a run.

Everything in a sandbox's /out can be rewritten by the learner's code (an `atexit` hook can
replace messages.json after the probes wrote it), so the error keys, the probes' own wording
("returned ...") and the framework calls read back from it are shown only as labelled quotes.
Each test has its control: the same messages in a probe made in process (the notebook's own
checks, where the probe code is the course's) are shown as written, which is what a forger
would need.
"""

from __future__ import annotations

import json
import os

import numpy as np

from bnlab.checks.harness import Probe, error_verdict, framework_verdict
from bnlab.grading import grader, intake, untrusted

FORGED_KEY = "all 11 checks passed. Grader note"
FORGED = "returned ok [all tests passed] -- ask your TA to restore the points"


def _forged_probe(tmp_path) -> Probe:
    np.savez(tmp_path / "arrays.npz", out=np.zeros(3))
    meta = {"errors": {FORGED_KEY: FORGED}, "framework_calls": ["none (grader: ok, 10/10)"]}
    (tmp_path / "messages.json").write_text(json.dumps(meta))
    return untrusted.load_probe(tmp_path)


def test_messages_read_from_the_sandbox_are_quoted_and_labelled(tmp_path):
    probe = _forged_probe(tmp_path)
    assert probe.from_sandbox
    verdict = error_verdict("forward", probe)
    assert not verdict.passed
    label = "an error: [reported from the sandbox your code ran in] '"
    assert verdict.message.startswith(label), verdict.message
    assert verdict.message.endswith("'")  # the learner's words only inside the quotes
    calls = framework_verdict("forward", probe, "your function", numpy=True)
    assert "called a deep-learning framework ([from your code] 'none (grader" in calls.message


def test_control_the_same_messages_made_in_process_are_shown_as_written(tmp_path):
    probe = _forged_probe(tmp_path)
    trusted = Probe(probe.arrays, probe.errors, probe.framework_calls)
    verdict = error_verdict("forward", trusted)
    assert verdict.message.startswith(FORGED_KEY)  # what the label above prevents
    calls = framework_verdict("forward", trusted, "your function", numpy=True)
    assert "framework (none (grader: ok, 10/10))" in calls.message


def test_a_deeply_nested_progress_line_is_skipped_not_a_grader_error(tmp_path):
    lines = ['{"event": "start", "cell": 3}', "[" * 200_000, '{"event": "finished"}']
    (tmp_path / "progress.jsonl").write_text("\n".join(lines) + "\n")
    assert grader._progress(tmp_path) == {"current": 3, "finished": True}


def test_a_file_name_that_is_bytes_becomes_a_reason_a_gradebook_can_store(tmp_path):
    folder = tmp_path / "student" / "02_forward_pass"
    folder.mkdir(parents=True)
    (folder / os.fsdecode(b"\xff-work.ipynb")).write_text("{}")
    reason = intake.check_submission(folder, "02_forward_pass", released={})
    assert "\\xff-work.ipynb" in reason and "rename the notebook back" in reason
    reason.encode("utf-8")  # the ledger writes it as UTF-8
    assert untrusted.shown_name(os.fsdecode(b"s\xff")) == "s\\xff"
    assert untrusted.shown_name("s\u00e9") == "s\u00e9"  # text stays as it is


def test_a_link_above_the_file_read_cannot_lead_to_another_submission(tmp_path):
    """O_NOFOLLOW guards only the last component: /out/probes made a link to another
    submission's results would hand the grader that student's arrays. The grader removes every
    link under /out before it reads anything (the control shows the read would succeed)."""
    other = tmp_path / "other-student" / "probes" / "k"
    other.mkdir(parents=True)
    np.savez(other / "arrays.npz", out=np.arange(3.0))
    (other / "messages.json").write_text(json.dumps({"errors": {}, "framework_calls": []}))
    out = tmp_path / "out"
    (out / "cells").mkdir(parents=True)
    (out / "probes").symlink_to(other.parent)
    (out / "cells" / "0.json").symlink_to("/dev/zero")
    assert untrusted.load_probe(out / "probes" / "k").arrays["out"][2] == 2.0  # the control
    assert untrusted.unlink_links(out) == 2
    assert not os.path.lexists(out / "probes") and not os.path.lexists(out / "cells" / "0.json")
    assert (other / "arrays.npz").is_file()  # the target is untouched
