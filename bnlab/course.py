"""`bn-course`: one entry point for the course's operations.

    bn-course book [--edition learner|instructor]   build the Jupyter Book into _build/html
    bn-course generate [STEM ...]                    solutions/STEM.py -> notebooks/STEM.ipynb
    bn-course check-notebooks                        fail if notebooks/ differ from a regeneration
    bn-course release STEM                           generate_assignment + release_assignment
    bn-course collect STEM                           nbgrader collect (exchange -> submitted/)
    bn-course submit NOTEBOOK --student S            place a submission in the course root
    bn-course autograde STEM [--student S]           screen submissions, then nbgrader autograde
    bn-course feedback STEM [--student S]            nbgrader generate_feedback (no hidden tests)
    bn-course export [--to FILE]                     nbgrader export + a graded/not-graded status

nbgrader itself runs in autograder/, whose nbgrader_config.py defines the course root
(`_course/` by default, or $BNLAB_COURSE_ROOT).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bnlab import intake

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
NOTEBOOKS = REPO / "notebooks"
AUTOGRADER = REPO / "autograder"
BUILD = REPO / "_build"


def course_root() -> Path:
    """The nbgrader course root, as autograder/nbgrader_config.py computes it."""
    return Path(os.environ.get("BNLAB_COURSE_ROOT") or REPO / "_course").resolve()


def _bin(name: str) -> str:
    """An executable of the running environment (the venv), falling back to PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _run(cmd: list[str], cwd: Path = REPO, env: dict | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    # nbgrader calls tools such as `alembic` by name: the venv's bin/ must come first on PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, "PATH": path, **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"bn-course: `{' '.join(cmd)}` failed with exit code {proc.returncode}")


def nbgrader(*args: str, root: Path | None = None) -> None:
    """Run a real `nbgrader` command with the course configuration."""
    env = {"BNLAB_COURSE_ROOT": str(root)} if root else None
    _run([_bin("nbgrader"), *args], cwd=AUTOGRADER, env=env)


def stems() -> list[str]:
    return sorted(p.stem for p in SOLUTIONS.glob("[0-9][0-9]_*.py"))


def source_notebook(stem: str):
    """Read solutions/STEM.py (jupytext percent format) as a notebook with stable cell ids."""
    import jupytext

    nb = jupytext.read(SOLUTIONS / f"{stem}.py")
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        cell["id"] = grade_id or f"{stem}-{i:02d}"
        cell.metadata.pop("lines_to_next_cell", None)  # jupytext layout hint, not content
    return nb


def write_sources(root: Path, selected: list[str]) -> None:
    import nbformat

    for stem in selected:
        target = root / "source" / stem / f"{stem}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(source_notebook(stem), target)


def generate(selected: list[str], dest: Path) -> list[Path]:
    """Learner notebooks from solutions/, by `nbgrader generate_assignment` in a scratch root.

    The result depends on solutions/ alone (not on any gradebook or submission), so CI can
    regenerate it and compare with the committed notebooks/.
    """
    written = []
    with tempfile.TemporaryDirectory(prefix="bnlab-generate-") as tmp:
        root = Path(tmp)
        write_sources(root, selected)
        for stem in selected:
            nbgrader("generate_assignment", stem, "--force", root=root)
            released = root / "release" / stem / f"{stem}.ipynb"
            nb = json.loads(released.read_text(encoding="utf-8"))
            dest.mkdir(parents=True, exist_ok=True)
            out = dest / f"{stem}.ipynb"
            out.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            written.append(out)
    return written


def release(stem: str, root: Path, db_url: str | None = None) -> None:
    """Generate the assignment in the course root (gradebook + release/) and release it."""
    write_sources(root, [stem])
    db = [f"--CourseDirectory.db_url={db_url}"] if db_url else []
    nbgrader("generate_assignment", stem, "--force", *db, root=root)
    from bnlab import cohort, grader

    cohort.prime(root, stem, grader.load_master(root, stem)[0])  # references, once
    nbgrader("release_assignment", stem, "--force", root=root)


def check_notebooks() -> int:
    """Regenerate every notebook into a scratch root; report any that differ from notebooks/."""
    selected = stems()
    with tempfile.TemporaryDirectory(prefix="bnlab-check-") as tmp:
        fresh = generate(selected, Path(tmp) / "notebooks")
        problems = []
        for path in fresh:
            committed = NOTEBOOKS / path.name
            if not committed.exists():
                problems.append(f"notebooks/{path.name} is missing")
            elif committed.read_text(encoding="utf-8") != path.read_text(encoding="utf-8"):
                problems.append(f"notebooks/{path.name} differs from solutions/{path.stem}.py")
        extra = {p.name for p in NOTEBOOKS.glob("*.ipynb")} - {p.name for p in fresh}
        problems += [f"notebooks/{name} has no source in solutions/" for name in sorted(extra)]
    for line in problems:
        print("bn-course check-notebooks:", line, "- run `bn-course generate`", file=sys.stderr)
    if not problems:
        print(f"notebooks/ is in sync with solutions/ ({len(selected)} notebooks)")
    return 1 if problems else 0


def build_book(edition: str = "learner") -> Path:
    env = {"BNLAB_EDITION": edition}
    # jupyter-book writes to PATH_OUTPUT/_build/html: the learner edition to _build/html.
    out = REPO if edition == "learner" else BUILD / "instructor"
    learner_cache, own_cache = BUILD / ".jupyter_cache", out / "_build" / ".jupyter_cache"
    if edition != "learner" and learner_cache.is_dir() and not own_cache.exists():
        # Both editions execute the same code: start from the learner edition's outputs.
        shutil.copytree(learner_cache, own_cache)
    cmd = [_bin("jupyter-book"), "build", str(REPO), "--path-output", str(out)]
    _run([*cmd, "--builder", "html", "-W", "-n", "--keep-going"], env=env)
    return out / "_build" / "html"


def autograde(stem: str, root: Path, student: str | None = None) -> int:
    """Screen every submission (bnlab.intake), then `nbgrader autograde` the gradable ones.

    A submission that cannot be graded is set aside with its reason; it never stops the others.
    """
    released_path = root / "release" / stem / f"{stem}.ipynb"
    if not released_path.is_file():
        released_path = NOTEBOOKS / f"{stem}.ipynb"
    released = json.loads(released_path.read_text(encoding="utf-8"))
    rejected = intake.screen(root, stem, released)
    intake.record(root, stem, rejected)
    for r in rejected:
        print(f"bn-course autograde: not graded: {r.line()}", file=sys.stderr)
    skip = sorted({r.student for r in rejected})
    students = sorted(p.parent.name for p in (root / "submitted").glob(f"*/{stem}"))
    todo = [s for s in students if s not in skip and (student is None or s == student)]
    if not todo:
        print(f"bn-course autograde: nothing to grade for {stem}", file=sys.stderr)
        return 0
    extra = ["--student", student] if student else []
    if skip:
        extra.append(f"--CourseDirectory.student_id_exclude={','.join(skip)}")
    nbgrader("autograde", stem, "--force", *extra, root=root)
    print(f"graded {len(todo)} submission(s) of {stem}; not graded: {len(skip)}")
    return 0


def export(to: Path, root: Path) -> Path:
    """`nbgrader export`, plus a status column: "graded", or "not graded: <reason>" (no score)."""
    import csv

    nbgrader("export", "--to", str(to), root=root)
    with open(to, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    fields = (
        list(rows[0].keys())
        if rows
        else [
            "assignment",
            "student_id",
            "raw_score",
            "late_submission_penalty",
            "score",
            "max_score",
        ]
    )
    not_graded = intake.load_records(root)
    seen = set()
    for row in rows:
        key = (row["student_id"], row["assignment"])
        seen.add(key)
        row["status"] = "graded"
        if key in not_graded:
            row["status"] = f"not graded: {not_graded[key]}"
            for col in ("raw_score", "late_submission_penalty", "score"):
                row[col] = ""
    for (student, assignment), reason in sorted(not_graded.items()):
        if (student, assignment) not in seen:
            rows.append(
                {
                    **dict.fromkeys(fields, ""),
                    "assignment": assignment,
                    "student_id": student,
                    "status": f"not graded: {reason}",
                }
            )
    with open(to, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*fields, "status"])
        writer.writeheader()
        writer.writerows(rows)
    return to


def submit(notebook: Path, student: str, stem: str, root: Path) -> Path:
    target = root / "submitted" / student / stem / f"{stem}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, target)
    return target


ZIP_REGEXP = r".*/(?P<student_id>[A-Za-z0-9.@+-]+)_(?P<file_id>[^/]+\.ipynb)$"


def zip_collect(archive: Path, stem: str, root: Path, regexp: str) -> None:
    """Unpack LMS downloads into submitted/ with the real `nbgrader zip_collect`."""
    if not archive.is_file():
        raise SystemExit(f"bn-course: {archive}: no such file")
    target = root / "downloaded" / stem / "archive"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(archive, target / archive.name)
    nbgrader(
        "zip_collect",
        stem,
        "--force",
        f"--FileNameCollectorPlugin.named_regexp={regexp}",
        "--FileNameCollectorPlugin.valid_ext=['.ipynb']",
        root=root,
    )


def grade(args, root: Path) -> int:
    from bnlab import cohort, sandbox

    if args.zip:
        zip_collect(args.zip.resolve(), args.assignment, root, args.zip_regexp)
    if args.unsafe_no_sandbox:
        print(
            "bn-course grade: WARNING: --unsafe-no-sandbox: learner code runs with YOUR "
            "permissions and can read and change your files and the gradebook",
            file=sys.stderr,
        )
    try:
        summary = cohort.grade_cohort(
            args.assignment,
            root,
            workers=args.workers,
            scheduler=args.scheduler,
            db_url=args.db,
            use_sandbox=not args.unsafe_no_sandbox,
            limits=sandbox.Limits(
                wall_s=args.time_limit,
                cpu_s=int(2 * args.time_limit) + 1,
                memory_bytes=int(args.memory_limit * 2**30),
            ),
            progress=not args.no_progress,
            feedback=not args.no_feedback,
        )
    except sandbox.SandboxUnavailable as err:
        print(f"bn-course grade: refusing to grade: {err}", file=sys.stderr)
        return 2
    print(
        f"{args.assignment}: graded {summary.graded}, not graded {summary.not_graded}, "
        f"unchanged {summary.skipped}, grader errors {len(summary.failed)} "
        f"in {summary.wall_s:.1f} s"
    )
    for line in summary.failed:
        print(f"grader error (retried on the next run): {line}", file=sys.stderr)
    print(f"grades: {summary.csv}\nreport: {summary.report}")
    return 1 if summary.failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bn-course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("book", help="build the book into _build/html")
    p.add_argument("--edition", choices=["learner", "instructor"], default="learner")
    p = sub.add_parser("generate", help="regenerate learner notebooks from solutions/")
    p.add_argument("stems", nargs="*")
    p.add_argument("--dest", type=Path, default=NOTEBOOKS, help="default: notebooks/")
    sub.add_parser("check-notebooks", help="fail if notebooks/ are out of date")
    p = sub.add_parser("submit", help="copy a notebook into submitted/STUDENT/STEM/")
    p.add_argument("notebook", type=Path)
    p.add_argument("--student", required=True)
    p.add_argument("--assignment", help="assignment id (default: the notebook's stem)")
    for name in ("release", "collect"):
        p = sub.add_parser(name, help=f"nbgrader {name} through the exchange")
        p.add_argument("assignment")
        if name == "release":
            p.add_argument("--db", help="gradebook URL (default: sqlite in the course root)")
    for name in ("autograde", "feedback"):
        p = sub.add_parser(name, help=f"nbgrader {name} for one assignment")
        p.add_argument("assignment")
        p.add_argument("--student")
    p = sub.add_parser(
        "grade",
        help="grade a cohort: sandboxed, parallel (Dask), resumable; feedback, CSV and report",
    )
    p.add_argument("assignment")
    p.add_argument("--workers", type=int, help="local workers (default: the number of cores)")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:8786)")
    p.add_argument("--db", help="gradebook URL (default: sqlite in the course root)")
    p.add_argument("--zip", type=Path, help="a zip of LMS downloads, unpacked by zip_collect")
    p.add_argument(
        "--zip-regexp",
        default=ZIP_REGEXP,
        help="how a file name in the zip gives student_id and file_id (nbgrader syntax)",
    )
    p.add_argument("--time-limit", type=float, default=120.0, help="seconds per submission")
    p.add_argument("--memory-limit", type=float, default=4.0, help="GiB per submission")
    p.add_argument("--no-feedback", action="store_true", help="skip generate_feedback")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="DANGEROUS: run learner code under your own account, unisolated",
    )
    p = sub.add_parser("export", help="export grades to CSV")
    p.add_argument("--to", default="grades.csv")
    args = parser.parse_args(argv)

    root = course_root()
    if args.cmd == "book":
        print("built:", build_book(args.edition) / "index.html")
    elif args.cmd == "generate":
        selected = args.stems or stems()
        unknown = sorted(set(selected) - set(stems()))
        if unknown:
            parser.error(f"no solutions/{unknown[0]}.py; known: {', '.join(stems())}")
        for path in generate(selected, args.dest.resolve()):
            print("wrote", path)
    elif args.cmd == "check-notebooks":
        return check_notebooks()
    elif args.cmd == "submit":
        if not args.notebook.is_file():
            parser.error(f"{args.notebook}: no such file")
        stem = args.assignment or args.notebook.stem
        if stem not in stems():
            parser.error(f"{args.notebook}: unknown assignment {stem!r}; pass --assignment STEM")
        print("submitted", submit(args.notebook, args.student, stem, root))
    elif args.cmd == "release":
        release(args.assignment, root, args.db)
    elif args.cmd == "grade":
        return grade(args, root)
    elif args.cmd == "collect":
        nbgrader("collect", args.assignment, "--update", root=root)
    elif args.cmd == "autograde":
        return autograde(args.assignment, root, args.student)
    elif args.cmd == "feedback":
        extra = ["--student", args.student] if args.student else []
        skip = sorted({st for st, a in intake.load_records(root) if a == args.assignment})
        if skip:
            extra.append(f"--CourseDirectory.student_id_exclude={','.join(skip)}")
        nbgrader("generate_feedback", args.assignment, "--force", *extra, root=root)
    elif args.cmd == "export":
        export(Path(args.to).resolve(), root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
