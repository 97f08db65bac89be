"""Exercise 8 (beyond BatchNorm): the judges themselves, the notebook's experiment, the corpus.

The solution, the blank notebook and every corpus file also go through the generic tests
(tests/test_corpus.py in-process, tests/test_grading_pipeline.py through nbgrader and
`bn-course grade`), which pick the assignment up from solutions/.
"""

from __future__ import annotations

import numpy as np
import pytest
from corpus_tools import corpus_files, grade_in_process, notebook_with, read_submission

from bnlab import checks
from bnlab.checks import beyond
from bnlab.grading import grader

STEM = "08_beyond_batchnorm"


def _solution_namespace() -> dict:
    ns: dict = {"__name__": "__main__"}
    for cell in notebook_with(STEM, {}).cells:
        if cell["id"] == "imports" or cell.metadata.get("nbgrader", {}).get("solution"):
            exec(cell.source, ns)
    return ns


def test_every_diagnosis_the_issue_names_is_proven_by_a_submission():
    seen = set()
    for path in corpus_files("wrong_"):
        if path.parent.name == STEM:
            _, expect = read_submission(path)
            seen |= set(expect.values())
    required = {
        "LN statistics over the batch axis",
        "GN with G ignored (that is LN)",
        "GN with one group per channel (that is IN)",
        "GN groups over the wrong axis",
        "GN affine per group instead of per channel",
        "folding forgets the old bias",
        "folding with eps outside the square root",
        "folding with the variance instead of the standard deviation",
        "conv weights scaled per input channel",
        "Batch Renorm with r and d not clipped",
        "Batch Renorm with r not clipped",
        "Batch Renorm with d not clipped",
        "framework call",
    }
    assert required <= seen, required - seen


def test_each_mistake_loses_only_its_own_cells():
    """The corpus files of this assignment name, between them, every graded cell, and each
    wrong file fails only the cells of the function it breaks."""
    owners = {
        "layernorm": {"test_ln_forward", "test_ln_backward"},
        "groupnorm": {"test_gn_forward", "test_gn_affine", "test_gn_backward"},
        "fold": {"test_fold_dense", "test_fold_conv"},
        "batchrenorm": {"test_renorm_limits", "test_renorm_clip"},
    }
    for path in corpus_files("wrong_"):
        if path.parent.name != STEM:
            continue
        answers, expect = read_submission(path)
        touched = {k.split("_")[0] for k in answers}
        allowed = set().union(*(owners[t] for t in touched))
        assert set(expect) <= allowed, (path.name, set(expect) - allowed)


def test_blank_notebook_scores_nothing():
    blank = {
        cell["id"]: "# YOUR CODE HERE\nraise NotImplementedError()\n"
        for cell in notebook_with(STEM, {}).cells
        if cell.metadata.get("nbgrader", {}).get("solution")
    }
    outcomes = grade_in_process(STEM, blank)
    assert outcomes and all(v is not None for v in outcomes.values()), outcomes


def test_the_assignment_is_graded_as_a_numpy_exercise():
    """The sandbox hides torch/TensorFlow for it (build_job's numpy_exercise flag)."""
    cells = [
        {"cell_type": c.cell_type, "metadata": dict(c.metadata), "source": c.source}
        for c in notebook_with(STEM, {}).cells
    ]
    job = grader.build_job(cells)
    assert job["numpy_exercise"] is True
    probed = {p["check"] for c in job["cells"] if c["kind"] == "test" for p in c["probes"]}
    assert probed == {k for k, s in checks.CHECKS.items() if s.stem == STEM}


def test_renorm_reference_reduces_to_the_real_batchnorm():
    """The judge's Batch Renorm (paper equations) against F.batch_norm at both limits."""
    for case in beyond.cases("renorm_limits", 5):
        ref = beyond._renorm_reference(case)["out"]
        np.testing.assert_allclose(ref, beyond._bn_limit(case), rtol=1e-9, atol=1e-9)
    # ... and the clipping cases really clip r from both sides and d
    for case in beyond.cases("renorm_clip", 5):
        unclipped = beyond._renorm_reference(case, "none", False)
        clipped = beyond._renorm_reference(case)
        assert np.any(unclipped["r"] > case.r_max) and np.any(unclipped["r"] < 1 / case.r_max)
        assert np.any(np.abs(unclipped["d"]) > case.d_max)
        assert np.any(np.abs(clipped["d"]) < case.d_max)


def test_fold_reference_is_exact_for_the_solution_and_sensitive():
    ns = _solution_namespace()
    for prop in ("fold_dense", "fold_conv"):
        for case in beyond.cases(prop, 2):
            W, b = ns["fold_batchnorm"](
                case.W,
                case.b,
                case.gamma,
                case.beta,
                case.running_mean,
                case.running_var,
                case.eps,
            )
            want = beyond._fold_outputs(case, original=True)
            got = beyond._fold_outputs(case, W.astype(np.float64), b.astype(np.float64))
            atol = beyond._fold_atol(case, want)
            assert np.abs(got - want).max() <= atol
            assert np.abs(got * 1.0001 - want).max() > atol  # a 1e-4 error is caught


def test_conv2d_helper_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, W, b = rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4)
    want = torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(W), torch.from_numpy(b), padding=1
    ).numpy()
    np.testing.assert_allclose(beyond.conv2d(x, W, b, padding=1), want, rtol=1e-12, atol=1e-12)


def test_folding_experiment_shows_the_border_error(capsys):
    """The notebook's ungraded experiment: folding a BN that follows a ReLU into the NEXT conv
    is exact inside the image (float32 round-off) and wrong on the zero-padded border."""
    ns = _solution_namespace()
    cell = next(c for c in notebook_with(STEM, {}).cells if "border = np.ones" in c.source)
    exec(cell.source, ns)
    out = capsys.readouterr().out
    interior = float(out.split("interior: largest error ")[1].split()[0])
    border = float(out.split("border:   largest error ")[1].split()[0])
    assert interior < 1e-5 and border > 0.1


def test_judge_names_a_renorm_that_ignores_the_limits():
    """A check run directly (as in the notebook) raises with the diagnosis."""

    def unclipped(x, gamma, beta, running_mean, running_var, r_max, d_max, eps=1e-5):
        out = gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta
        return out, np.ones(x.shape[1]), np.zeros(x.shape[1])

    with pytest.raises(AssertionError, match="Diagnosis: Batch Renorm with r and d not clipped"):
        checks.check("renorm.limits", unclipped)
