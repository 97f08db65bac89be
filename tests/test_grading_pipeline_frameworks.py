"""The pipeline of tests/test_grading_pipeline.py for the framework exercises: the same
tests on these assignments, in a module of their own so that pytest-xdist grades them beside the
NumPy ones (each module builds its own course root)."""

from test_grading_pipeline import *  # noqa: F403
from test_grading_pipeline import pytest_generate_tests  # noqa: F401

from bnlab.checks import framework_stems

STEMS = framework_stems()
