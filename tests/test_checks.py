"""The learner checks accept every valid implementation and name the mistake of wrong ones."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bnlab import checks, references
from conftest import CORPUS, load_function, solution_code

ALL_CHECKS = [
    checks.check_forward_shape,
    checks.check_forward_normalizes,
    checks.check_forward_affine,
    checks.check_forward_torch,
    checks.check_forward_keras,
    checks.check_forward_eps,
]


def solution():
    namespace = {"np": np}
    exec(solution_code("02_forward_pass", "batchnorm_forward"), namespace)
    return namespace["batchnorm_forward"]


@pytest.mark.parametrize("path", sorted(CORPUS.glob("forward/valid_*.py")), ids=lambda p: p.stem)
def test_valid_variants_pass_every_check(path):
    fn = load_function(path, "batchnorm_forward")
    for check in ALL_CHECKS:
        check(fn)


def test_instructor_solution_passes_every_check():
    for check in ALL_CHECKS:
        check(solution())


@pytest.mark.parametrize(
    "stem, failing, message",
    [
        ("wrong_unbiased_variance", checks.check_forward_normalizes, "unbiased variance"),
        ("wrong_eps_outside_sqrt", checks.check_forward_eps, "inside the root"),
        ("wrong_per_sample", checks.check_forward_normalizes, "per-feature means"),
    ],
)
def test_wrong_variants_fail_with_a_named_reason(stem, failing, message):
    fn = load_function(CORPUS / "forward" / f"{stem}.py", "batchnorm_forward")
    with pytest.raises(AssertionError, match=message):
        failing(fn)
    with pytest.raises(AssertionError):
        checks.check_forward_torch(fn, seeds=(3,), shapes=((5, 4),))


def test_wrong_return_value_is_explained():
    with pytest.raises(AssertionError, match=r"pair \(out, cache\)"):
        checks.check_forward_shape(lambda x, gamma, beta, eps=1e-5: x)
    with pytest.raises(AssertionError, match="shape"):
        checks.check_forward_shape(lambda x, gamma, beta, eps=1e-5: (x.T, None))


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
        "import numpy as np; from bnlab import references; "
        "references.keras_batchnorm_train(np.arange(6.0).reshape(3, 2), np.ones(2), np.zeros(2))"
    )
    assert _stderr_of(raw) != ""
    assert _stderr_of(quiet) == ""
