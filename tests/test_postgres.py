"""nbgrader's gradebook on a real PostgreSQL server, not only on SQLite."""

from __future__ import annotations

import os
import sys

from nbgrader.api import Gradebook
from pgserver import pg_url  # noqa: F401  (a fixture: ruff --fix would drop the import)
from sqlalchemy import text


def test_nbgrader_gradebook_round_trip_on_postgres(pg_url, monkeypatch):  # noqa: F811
    # A new gradebook runs `alembic` by name: the venv's bin/ must be on PATH (as in bn-course).
    venv_bin = os.path.dirname(sys.executable)
    monkeypatch.setenv("PATH", os.pathsep.join([venv_bin, os.environ["PATH"]]))
    with Gradebook(pg_url) as gb:
        with gb.db.get_bind().connect() as conn:
            assert "PostgreSQL" in conn.execute(text("SELECT version()")).scalar_one()
        gb.add_assignment("ps1")
        gb.add_notebook("batchnorm", "ps1")
        gb.add_grade_cell("forward", "batchnorm", "ps1", max_score=2, cell_type="code")
        gb.add_solution_cell("forward", "batchnorm", "ps1")
        gb.add_student("ada", first_name="Ada", last_name="Lovelace")
        gb.add_submission("ps1", "ada")
        gb.find_grade("forward", "batchnorm", "ps1", "ada").auto_score = 1.5
        gb.db.commit()

    with Gradebook(pg_url) as gb:
        assert gb.find_student("ada").last_name == "Lovelace"
        grade = gb.find_grade("forward", "batchnorm", "ps1", "ada")
        assert (grade.score, grade.max_score) == (1.5, 2)
        submission = gb.find_submission("ps1", "ada")
        assert (submission.score, submission.max_score) == (1.5, 2)
