"""Units of the check machinery: references, the framework guard, tolerances, quiet imports."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bnlab import checks
from bnlab.checks import references
from bnlab.checks.harness import Failure, FrameworkGuard, Probe, call_learner, forward_atol


def test_torch_and_keras_references_agree():
    rng = np.random.default_rng(7)
    x = rng.normal(3.0, 2.0, size=(12, 5))
    gamma, beta = rng.uniform(0.5, 2, 5), rng.normal(size=5)
    for eps in (1e-5, 1e-3, 0.3):
        t = references.torch_batchnorm_train(x, gamma, beta, eps)
        k = references.keras_batchnorm_train(x, gamma, beta, eps)
        m = references.torch_batchnorm1d_train(x, gamma, beta, eps)
        np.testing.assert_allclose(t, k, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(t, m, rtol=1e-12, atol=1e-12)


def test_framework_guard_sees_aliased_and_indirect_calls():
    torch = pytest.importorskip("torch")
    hidden = torch.nn.functional.batch_norm

    def helper(x):
        return hidden(torch.from_numpy(x), None, None, training=True).numpy()

    probe = Probe()
    call_learner(probe, "case", lambda x: helper(x) + 1, np.ones((3, 2)))
    assert any(name.startswith("torch") for name in probe.framework_calls)

    numpy_only = Probe()
    call_learner(numpy_only, "case", lambda x: (x - x.mean(0)) / x.std(0), np.eye(3))
    assert numpy_only.framework_calls == [] and numpy_only.errors == {}


def test_guard_is_removed_after_the_call():
    with FrameworkGuard():
        assert sys.getprofile() is not None
    assert sys.getprofile() is None


def test_learner_exceptions_become_messages_not_crashes():
    probe = Probe()
    assert call_learner(probe, "case", lambda: 1 / 0) is None
    assert probe.errors == {"case": "ZeroDivisionError: division by zero"}


def test_tolerance_follows_the_precision_of_the_input():
    rng = np.random.default_rng(0)
    ones, zeros = np.ones(3), np.zeros(3)
    small = forward_atol(rng.normal(size=(50, 3)), ones, zeros, 1e-5)
    big64 = forward_atol(1e8 + rng.normal(size=(50, 3)), ones, zeros, 1e-5)
    big32 = forward_atol((1e4 + rng.normal(size=(50, 3))).astype(np.float32), ones, zeros, 1e-5)
    assert np.all(small < 1e-11) and np.all(big64 < 1e-5)
    # float32 at mean 1e4 is only known to ~1e-3: a correct two-pass float32 answer must pass
    assert np.all(big32 > 2e-3) and np.all(big32 < 0.1)


def test_a_failing_check_raises_an_assertion_with_the_diagnosis(capsys):
    def unbiased(x, gamma, beta, eps=1e-5):
        return gamma * (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + eps) + beta, None

    with pytest.raises(AssertionError, match="Diagnosis: unbiased variance") as info:
        checks.check("forward.normalizes", unbiased)
    assert isinstance(info.value, Failure) and info.value.verdict.diagnosis == "unbiased variance"

    def correct(x, gamma, beta, eps=1e-5):
        return gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + beta, None

    assert checks.check("forward.normalizes", correct) is None
    assert capsys.readouterr().out.startswith("ok [forward.normalizes]")


def _stderr_of(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_keras_reference_writes_nothing_to_stderr():
    """nbgrader scores a test cell with stderr output 0: the reference must stay silent, although
    a plain TensorFlow import in the same environment is noisy."""
    raw = "import tensorflow as tf; tf.ones((2, 3)) + 1"
    quiet = (
        "import numpy as np; from bnlab.checks import references; "
        "references.keras_batchnorm_train(np.arange(6.0).reshape(3, 2), np.ones(2), np.zeros(2))"
    )
    assert _stderr_of(raw) != ""
    assert _stderr_of(quiet) == ""


@pytest.mark.parametrize("check_id", sorted(checks.CHECKS))
def test_judges_are_functions_of_data(tmp_path, check_id):
    """A probe saved as npz/json and loaded elsewhere gives the judge the same verdict: the
    learner's code can run in one process and the decision be made in another."""
    from corpus_tools import notebook_with

    spec = checks.CHECKS[check_id]
    module, prop, what = spec.module, spec.prop, spec.what
    ns: dict = {}
    for cell in notebook_with(spec.stem, {}).cells:
        if cell.metadata.get("nbgrader", {}).get("solution") or cell["id"] == "imports":
            exec(cell.source, ns)
    names = spec.names
    cases = module.cases(prop, 3)
    probe = module.probe(*[ns[n] for n in names], cases)
    probe.save(tmp_path)
    loaded = Probe.load(tmp_path)
    assert loaded.arrays.keys() == probe.arrays.keys()
    direct, replayed = (
        module.judge(prop, cases, probe, what),
        module.judge(prop, cases, loaded, what),
    )
    assert direct.passed and replayed.passed and direct.message == replayed.message


def test_property_hints_name_what_broke():
    """A wrong answer that matches no named mistake still hears which property broke."""
    from bnlab.checks.harness import dx_property_hint, output_property_hint

    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (16, 4))
    x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    want = 1.5 * x_hat + 0.5
    assert "mean of the output is off" in output_property_hint(want + 0.3, want)
    assert "spread of the output is off" in output_property_hint((want - 0.5) * 2 + 0.5, want)
    assert "samples or positions are mixed" in output_property_hint(want[::-1], want)
    assert output_property_hint(want, want[:3]) == ""  # shapes differ: described elsewhere
    dout = rng.standard_normal((16, 4))
    n = 16
    dx = (
        1.5
        / np.sqrt(x.var(0) + 1e-5)
        / n
        * (n * dout - dout.sum(0) - x_hat * (dout * x_hat).sum(0))
    )
    no_mean_path = 1.5 / np.sqrt(x.var(0) + 1e-5) / n * (n * dout - x_hat * (dout * x_hat).sum(0))
    no_var_path = 1.5 / np.sqrt(x.var(0) + 1e-5) / n * (n * dout - dout.sum(0))
    assert "does not sum to zero" in dx_property_hint(no_mean_path, dx, x, 1e-5)
    assert "not orthogonal to x_hat" in dx_property_hint(no_var_path, dx, x, 1e-5)
    assert "direct term" in dx_property_hint(2 * dx, dx, x, 1e-5)  # both identities hold
