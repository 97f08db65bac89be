"""The pipeline of tests/test_grading_pipeline.py for the framework exercises: the same
tests on these assignments, in a module of their own so that pytest-xdist grades them beside the
NumPy ones (each module builds its own course root)."""

from test_grading_pipeline import *  # noqa: F403
from test_grading_pipeline import pytest_generate_tests  # noqa: F401

from bnlab.checks import CHECKS, framework_stems, sync_layers

# The distributed exercise has a module of its own (test_grading_pipeline_sync.py).
STEMS = sorted(
    set(framework_stems()) - {s.stem for s in CHECKS.values() if s.module is sync_layers}
)
