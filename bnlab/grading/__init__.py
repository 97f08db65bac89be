"""The instructor's grading service: intake, the bubblewrap sandbox and the runner inside it, the
judge loop, the ledger, the cohort runner (Dask) and the report, plus the nbgrader workflow.
Depends on `bnlab.checks` and `bnlab.core`; nothing on the learner's side imports it."""
