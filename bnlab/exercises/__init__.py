"""Checks per exercise: cases (inputs), probes (learner code -> arrays), judges (verdicts)."""
