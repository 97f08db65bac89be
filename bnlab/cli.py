"""`bn-course`: one entry point for the course's operations.

    bn-course book [--edition learner|self-study|instructor]   build the Jupyter Book
    bn-course generate [STEM ...]                    solutions/STEM.py -> notebooks/STEM.ipynb
    bn-course check-notebooks                        fail if notebooks/ differ from a regeneration
    bn-course release STEM                           generate_assignment + release_assignment
    bn-course collect STEM                           nbgrader collect, links and impostors refused
    bn-course submit NOTEBOOK --student S            place a submission in the course root
    bn-course autograde STEM [--student S]           screen submissions, then nbgrader autograde
    bn-course grade STEM                             sandboxed, parallel, resumable grading
    bn-course feedback STEM [--student S] [--db URL] nbgrader generate_feedback (no hidden tests)
    bn-course export [--to FILE] [--db URL]          nbgrader export + status and review columns
    bn-course references --write | --check           references shipped for the visible checks

nbgrader itself runs in autograder/, whose nbgrader_config.py defines the course root
(`_course/` by default, or $BNLAB_COURSE_ROOT). This module only parses arguments and calls.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bnlab.book import build
from bnlab.core.course import NOTEBOOKS, course_root, nbgrader, stems
from bnlab.grading import intake, workflow
from bnlab.grading.workflow import ZIP_REGEXP


def grade(args, root: Path) -> int:
    from bnlab.grading import cohort, sandbox

    if args.zip:
        workflow.zip_collect(args.zip.resolve(), args.assignment, root, args.zip_regexp)
    if not args.unsafe_no_sandbox:
        version, why = sandbox.cgroup_status()
        if version is None:
            print(
                f"bn-course grade: WARNING: no cgroup per submission ({why}): memory, "
                "process and CPU limits hold per process only",
                file=sys.stderr,
            )
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
            run_seed=args.seed,
        )
    except sandbox.SandboxUnavailable as err:
        print(f"bn-course grade: refusing to grade: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "bn-course grade: stopped (Ctrl-C). Every grade recorded so far is complete; the "
            "submissions being graded were stopped and recorded nowhere. Run the same command "
            "again: it grades what is left and writes the CSV, the report and any feedback page "
            "still missing.",
            file=sys.stderr,
        )
        return 130
    print(
        f"{args.assignment}: graded {summary.graded}, not graded {summary.not_graded}, "
        f"unchanged {summary.skipped}, grader errors {len(summary.failed)} "
        f"in {summary.wall_s:.1f} s (input seed {summary.run_seed}: --seed to reproduce)"
    )
    for line in summary.failed:
        print(f"grader error (retried on the next run): {line}", file=sys.stderr)
    print(f"grades: {summary.csv}\nreport: {summary.report}")
    return 1 if summary.failed else 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bn-course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("book", help="build the book into _build/html")
    p.add_argument(
        "--edition",
        choices=list(build.EDITIONS),
        default="learner",
        help="learner: no answers to the chapter questions (_build/html); self-study: the answers "
        "collapsed behind a toggle (_build/self-study/_build/html); instructor: the answers shown "
        "(_build/instructor/_build/html)",
    )
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
        if name == "feedback":
            p.add_argument("--db", help="gradebook URL (default: sqlite in the course root)")
    p = sub.add_parser(
        "grade",
        help="grade a cohort: sandboxed, parallel (or on Dask), resumable; feedback, CSV, report",
    )
    p.add_argument("assignment")
    p.add_argument(
        "--workers",
        type=_positive,
        help="sandboxes at a time on this machine (default: the number of cores)",
    )
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
    p.add_argument(
        "--seed",
        type=int,
        help="the run's input seed (default: drawn afresh, so hidden inputs change every run)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="DANGEROUS: run learner code under your own account, unisolated",
    )
    p = sub.add_parser("export", help="export grades to CSV")
    p.add_argument("--to", default="grades.csv")
    p.add_argument("--db", help="gradebook URL (default: sqlite in the course root)")
    p = sub.add_parser(
        "references",
        help="the framework references of the NumPy notebooks' visible checks, shipped in bnlab "
        "(bnlab/checks/data/visible_references.zip) for learners without torch/Keras",
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="compute with the real frameworks")
    mode.add_argument(
        "--check", action="store_true", help="exit 1 if the shipped file differs from a fresh run"
    )
    args = parser.parse_args(argv)

    root = course_root()
    if args.cmd == "book":
        print("built:", build.build_book(args.edition) / "index.html")
    elif args.cmd == "generate":
        selected = args.stems or stems()
        unknown = sorted(set(selected) - set(stems()))
        if unknown:
            parser.error(f"no solutions/{unknown[0]}.py; known: {', '.join(stems())}")
        for path in workflow.generate(selected, args.dest.resolve()):
            print("wrote", path)
    elif args.cmd == "check-notebooks":
        return workflow.check_notebooks()
    elif args.cmd == "submit":
        if not args.notebook.is_file():
            parser.error(f"{args.notebook}: no such file")
        stem = args.assignment or args.notebook.stem
        if stem not in stems():
            parser.error(f"{args.notebook}: unknown assignment {stem!r}; pass --assignment STEM")
        print("submitted", workflow.submit(args.notebook, args.student, stem, root))
    elif args.cmd == "release":
        workflow.release(args.assignment, root, args.db)
    elif args.cmd == "grade":
        return grade(args, root)
    elif args.cmd == "collect":
        refused = workflow.collect(args.assignment, root)
        if refused:
            print(f"refused {len(refused)}: reports/{args.assignment}-collect-refused.txt")
    elif args.cmd == "autograde":
        return workflow.autograde(args.assignment, root, args.student)
    elif args.cmd == "feedback":
        extra = ["--student", args.student] if args.student else []
        if args.db:
            extra.append(f"--CourseDirectory.db_url={args.db}")
        skip = sorted({st for st, a in intake.load_records(root) if a == args.assignment})
        if skip:
            extra.append(f"--CourseDirectory.student_id_exclude={','.join(skip)}")
        nbgrader("generate_feedback", args.assignment, "--force", *extra, root=root)
        from bnlab.grading import report

        report.secure_feedback_pages(root, args.assignment)
    elif args.cmd == "export":
        workflow.export(Path(args.to).resolve(), root, args.db)
    elif args.cmd == "references":
        from bnlab.grading import visible_references

        return visible_references.write() if args.write else visible_references.check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
