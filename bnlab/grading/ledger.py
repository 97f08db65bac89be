"""Write grading results into nbgrader's gradebook, one transaction per submission.

The gradebook is nbgrader's own (SQLite by default, PostgreSQL or any SQLAlchemy URL), so
`nbgrader generate_feedback`, `nbgrader export` and the formgrader work on it. Beside nbgrader's
tables one more, `bnlab_ledger`, remembers which version of which submission was graded and how
(status, reason, per-cell verdicts). A submission's grades and its ledger row are committed
together: killed at any moment, the gradebook holds either the old state or the new one, and a
rerun grades exactly the submissions whose ledger row is missing or out of date.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Column, DateTime, Float, MetaData, String, Table, Text, delete, select

from bnlab.core.imports import absent_during
from bnlab.grading.grader import SubmissionResult

_meta = MetaData()
LEDGER = Table(
    "bnlab_ledger",
    _meta,
    Column("student", String(128), primary_key=True),
    Column("assignment", String(128), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("score", Float),
    Column("max_score", Float, nullable=False),
    Column("summary", Text, nullable=False),
    Column("graded_at", DateTime, nullable=False),
)


def _gradebook_class():
    """nbgrader's Gradebook, imported without compiling rfc3987_syntax's IRI grammar.

    nbgrader imports nbformat, which imports jsonschema, which imports rfc3987_syntax (when it
    is installed) to check the "iri" string format; that module builds a Lark parser when it is
    imported, 0.9 s of the 1.7 s that importing nbgrader costs the grading run before its first
    sandbox can start. Nothing in this process checks that format: nbformat's schemas do not use
    it and nbformat validates without a format checker. So it is kept out of that import
    (jsonschema then leaves the format unchecked, as it does where the package is not
    installed); nbgrader's own commands, in their own processes, are unaffected.
    """
    with absent_during("rfc3987_syntax"):
        from nbgrader.api import Gradebook
    return Gradebook


def open_gradebook(url: str):
    """nbgrader's Gradebook on `url`, with the ledger table created when missing."""
    gb = _gradebook_class()(url)
    _meta.create_all(gb.db.get_bind())
    return gb


def check_assignment(gb, assignment: str) -> None:
    from nbgrader.api import MissingEntry

    try:
        gb.find_assignment(assignment)
    except MissingEntry:
        raise SystemExit(
            f"bn-course: the gradebook has no assignment {assignment!r}: "
            f"run `bn-course release {assignment}` (with the same --db) first"
        ) from None


def digests(gb, assignment: str) -> dict[str, str]:
    """student -> digest of the submission version already recorded."""
    rows = gb.db.execute(
        select(LEDGER.c.student, LEDGER.c.digest).where(LEDGER.c.assignment == assignment)
    )
    return {r.student: r.digest for r in rows}


def rows(gb, assignment: str) -> list[dict]:
    query = select(LEDGER).where(LEDGER.c.assignment == assignment).order_by(LEDGER.c.student)
    return [dict(r._mapping) for r in gb.db.execute(query)]


def review_of(row: dict) -> list[str]:
    """The review list (bnlab.grading.review) stored in a ledger row's summary."""
    return json.loads(row["summary"]).get("review") or []


def reviews(url: str) -> dict[tuple[str, str], list[str]]:
    """{(student, assignment): review list} of every ledger row of the gradebook at `url`; empty
    when `bn-course grade` never wrote to it (nbgrader's own autograde keeps no ledger). Read
    with SQLAlchemy alone: nothing is created or written."""
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        if not inspect(engine).has_table(LEDGER.name):
            return {}
        with engine.connect() as conn:
            return {
                (r["student"], r["assignment"]): review_of(r)
                for r in (dict(m._mapping) for m in conn.execute(select(LEDGER)))
            }
    finally:
        engine.dispose()


def _timestamp(text: str | None):
    from nbgrader.utils import parse_utc

    if not text:
        return None
    try:
        return parse_utc(text)
    except Exception:  # noqa: BLE001 - a learner-edited timestamp must not stop grading
        return None


def record(gb, result: SubmissionResult) -> None:
    """Store one submission's grades and ledger row in a single transaction."""
    session = gb.db
    try:
        if result.status == "graded":
            gb.update_or_create_student(result.student)
            # Creates the submission's grade and comment rows (nbgrader commits these empty
            # rows itself; they hold no score until the transaction below commits).
            kwargs = {}
            when = _timestamp(result.timestamp)
            if when is not None:
                kwargs["timestamp"] = when
            # nbgrader's add_submission builds the submission's rows through relationships
            # before it adds them to the session; with autoflush on, SQLAlchemy 2 warns at each
            # lazy load on the way that the backref append "will not proceed" (three warnings
            # per submission on the instructor's terminal). Its commit writes them all the same.
            with session.no_autoflush:
                gb.update_or_create_submission(result.assignment, result.student, **kwargs)
            notebook = gb.find_submission_notebook(
                result.assignment, result.assignment, result.student
            )
            scores = {c.grade_id: c.score for c in result.cells}
            for grade in notebook.grades:
                if grade.name in scores:
                    grade.auto_score = scores[grade.name]
                    grade.needs_manual_grade = grade.manual_score is not None
            for comment in notebook.comments:
                comment.auto_comment = None
        session.execute(
            delete(LEDGER).where(
                (LEDGER.c.student == result.student) & (LEDGER.c.assignment == result.assignment)
            )
        )
        session.execute(
            LEDGER.insert().values(
                student=result.student,
                assignment=result.assignment,
                digest=result.digest,
                status=result.status,
                reason=result.reason,
                score=result.score,
                max_score=result.max_score,
                summary=json.dumps(
                    {**result.summary(), "notes": result.notes, "run_seed": result.run_seed}
                ),
                graded_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
            )
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
