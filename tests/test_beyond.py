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
        "Batch Renorm with r not detached",
        "Batch Renorm with d not detached",
        "Batch Renorm with r and d not detached",
        "Batch Renorm gradient without r",
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
        "batchrenorm": {"test_renorm_limits", "test_renorm_clip", "test_renorm_backward"},
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


def test_a_layernorm_over_the_batch_axis_is_named_on_every_case():
    """The mistake's graph is evaluated on every LN case, the one-sample case included (where
    F.batch_norm would refuse), so such an answer gets its diagnosis, not a judging error."""

    def batch_axis(x, gamma, beta, eps=1e-5):
        mu, var = x.mean(axis=0), x.var(axis=0)
        return gamma * (x - mu) / np.sqrt(var + eps) + beta, None

    with pytest.raises(AssertionError, match="Diagnosis: LN statistics over the batch axis"):
        checks.check("layernorm.forward", batch_axis)
    for case in beyond.cases("ln_forward", seed=0):
        x, g, b = (beyond._t(a) for a in (case.x, case.gamma, case.beta))
        out = beyond._norm_graph(case, "ln-batch-axis", x, g, b)
        assert np.all(np.isfinite(out.numpy())), case.name


def test_renorm_backward_cases_carry_the_forwards_r_and_d():
    """r and d are computed in NumPy with the case (the probe side imports no framework); they
    are the judge's own Batch Renorm r and d, clipped on both sides somewhere."""
    for case in beyond.cases("renorm_backward", 4):
        ref = beyond._renorm_reference(case)
        atol = 1e-12 if case.x.dtype == np.float64 else 1e-6
        np.testing.assert_allclose(case.r, ref["r"], rtol=0, atol=atol)
        np.testing.assert_allclose(case.d, ref["d"], rtol=0, atol=atol)
        assert case.dout.dtype == case.r.dtype == case.d.dtype == case.x.dtype
        assert np.any(np.isclose(case.r, case.r_max)) and np.any(
            np.isclose(case.r, 1 / case.r_max)
        )
        assert np.any(np.isclose(np.abs(case.d), case.d_max)) and np.any(
            np.abs(case.d) < case.d_max
        )


def test_renorm_not_detached_graphs_are_the_papers_without_stop_gradient():
    """Where r and d are not clipped, the "not detached" mistakes are the paper's graph with the
    real running statistics and no stop_gradient; with r and d constant, dx is BN's times r."""
    torch = pytest.importorskip("torch")
    case = beyond.cases("renorm_backward", 6)[0]
    free = (case.r > 1 / case.r_max) & (case.r < case.r_max)
    free &= np.abs(case.d) < case.d_max
    assert free.any()
    x = beyond._t(case.x).requires_grad_(True)
    mu_b = x.mean(0)
    sigma_b = torch.sqrt(x.var(0, unbiased=False) + case.eps)
    sigma = torch.sqrt(beyond._t(case.running_var) + case.eps)
    r = sigma_b / sigma
    d = (mu_b - beyond._t(case.running_mean)) / sigma
    out = beyond._t(case.gamma) * ((x - mu_b) / sigma_b * r + d)
    (out * beyond._t(case.dout)).sum().backward()
    want = beyond._renorm_autograd(case, "rd-graph")["dx"]
    np.testing.assert_allclose(x.grad.numpy()[:, free], want[:, free], rtol=1e-9, atol=1e-12)
    bn = beyond._renorm_autograd(case, "no-r")["dx"]
    np.testing.assert_allclose(beyond._renorm_autograd(case)["dx"], bn * case.r, rtol=1e-9)


def test_renorm_gradient_experiment_shows_what_detaching_changes(capsys):
    """The notebook's numerical check: the solution's dx is the gradient with r and d frozen;
    through r and d the gradient is the inference transform's, far from it."""
    ns = _solution_namespace()
    cell = next(c for c in notebook_with(STEM, {}).cells if "def frozen(v)" in c.source)
    exec(cell.source, ns)
    out = capsys.readouterr().out
    errors = [float(line.split("rel. error")[1]) for line in out.splitlines()]
    assert errors[0] < 1e-7 and errors[1] < 1e-7 and errors[2] > 0.1, out


def test_judge_names_a_renorm_gradient_through_r_and_d():
    def through(dout, x, gamma, r, d, eps=1e-5):
        sigma = np.sqrt(x.var(axis=0) + eps) / r
        return (
            gamma * dout / sigma,
            (dout * (x - x.mean(0)) / sigma + dout * d).sum(0),
            dout.sum(0),
        )

    with pytest.raises(AssertionError, match="Diagnosis: Batch Renorm with r and d not detached"):
        checks.check("renorm.backward", through)
