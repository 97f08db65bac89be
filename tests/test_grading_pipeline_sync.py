"""The pipeline of tests/test_grading_pipeline.py for the distributed exercise (10), in a module
of its own so that pytest-xdist grades it beside the other assignments (each module builds its
own course root)."""

from test_grading_pipeline import *  # noqa: F403
from test_grading_pipeline import pytest_generate_tests  # noqa: F401

from bnlab.checks import CHECKS, sync_layers

STEMS = sorted({spec.stem for spec in CHECKS.values() if spec.module is sync_layers})
