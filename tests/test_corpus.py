"""Every corpus submission gets exactly the grade and the diagnosis it should, in-process."""

from __future__ import annotations

import pytest
from corpus_tools import (
    corpus_files,
    grade_in_process,
    grade_in_process_explained,
    read_submission,
)

from bnlab import checks
from bnlab.core.course import stems


@pytest.mark.parametrize("stem", stems())
def test_instructor_solution_passes_every_test(stem):
    outcomes = grade_in_process(stem, {})
    assert outcomes and all(v is None for v in outcomes.values()), outcomes


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_corpus_submission(path):
    answers, expect = read_submission(path)
    outcomes, errors = grade_in_process_explained(path.parent.name, answers)
    if expect is None:
        failed = {k: v for k, v in outcomes.items() if v is not None}
        assert not failed, f"a valid implementation lost points: {failed}\n{errors}"
    else:
        wanted = {k: expect.get(k) for k in outcomes}
        unexpected = {k: v for k, v in errors.items() if wanted.get(k) != "exception"}
        assert outcomes == wanted, "".join(f"\n{k}:\n{v}" for k, v in unexpected.items())


def test_every_diagnosis_the_issue_names_is_proven_by_a_submission():
    seen = set()
    for path in corpus_files("wrong_"):
        _, expect = read_submission(path)
        seen |= set(expect.values())
    required = {
        "unbiased variance",
        "eps outside the square root",
        "eps missing",
        "statistics over the wrong axis",
        "gamma and beta ignored",
        "gamma and beta swapped",
        "dgamma not summed over the batch",
        "dbeta not summed over the batch",
        "mean and variance treated as constants",
        "momentum convention inverted",
        "running_var stored biased",
        "batch statistics in eval mode",
        "running_var initialised to zeros",
        "spatial statistics over the wrong axes",
        "framework call",
        "one-pass variance cancellation",
        "spatial reshape without moving the channel axis",
        "statistics over the batch axis only",
    }
    assert required <= seen, required - seen


def test_speedup_is_reported_not_graded(capsys):
    from corpus_tools import notebook_with

    ns: dict = {}
    for cell in notebook_with("03_backward_pass", {}).cells:
        if cell["id"] in (
            "imports",
            "batchnorm_forward",
            "batchnorm_backward",
            "batchnorm_backward_fast",
        ):
            exec(cell.source, ns)
    ratio = checks.report_speedup(
        ns["batchnorm_forward"], ns["batchnorm_backward"], ns["batchnorm_backward_fast"], repeat=3
    )
    assert ratio > 0 and "speed-up" in capsys.readouterr().out
