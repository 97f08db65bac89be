"""The nbgrader workflow of an instructor: generate learner notebooks, release, screen and
autograde (stock nbgrader), export with a status column, submit locally and unpack LMS zips.
`bn-course grade` (the sandboxed grader) lives in `bnlab.grading.cohort`."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from bnlab.core.course import NOTEBOOKS, exchange_root, nbgrader, stems, write_sources
from bnlab.grading import intake


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
    from bnlab.grading import cohort, grader

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


def autograde(stem: str, root: Path, student: str | None = None) -> int:
    """Screen every submission (bnlab.grading.intake), then `nbgrader autograde` the gradable ones.

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


def export(to: Path, root: Path, db_url: str | None = None) -> Path:
    """`nbgrader export`, plus a status column ("graded", or "not graded: <reason>", with no
    score) and the review column of `bn-course grade` (bnlab.grading.review: the constructs of
    the submission that reach into the interpreter; empty for a submission it did not grade)."""
    import csv

    from bnlab.grading import ledger
    from bnlab.grading.cohort import default_db

    extra = [f"--CourseDirectory.db_url={db_url}"] if db_url else []
    nbgrader("export", "--to", str(to), *extra, root=root)
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
    review = ledger.reviews(db_url or default_db(root))
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
    for row in rows:
        row["review"] = "; ".join(review.get((row["student_id"], row["assignment"]), []))
    with open(to, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*fields, "status", "review"])
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


COURSE_ID = "batchnorm"


def collect(stem: str, root: Path) -> list[str]:
    """`nbgrader collect` (exchange inbound -> submitted/), on a screened copy of the inbound.

    Stock collect copies the *targets* of symlinks (a student's inbound file linked to the
    course's source notebook lands in submitted/ as a regular file), copies hard links the same
    way, and takes a folder named `<another id>+STEM+<later time>` as that student's latest
    submission. Here every inbound folder of STEM is screened first, with lstat only: it must
    be a real folder holding only regular files (each with one name) and folders, all owned by
    the account named by its student id (when no account has that name, by the same owner as
    that id's other folders). The accepted folders are
    copied, byte for byte and without following anything, into a private staging exchange, and
    the real `nbgrader collect --update` runs on that. The exchange itself is left untouched
    (nothing is lost); each refused folder is returned with its reason, printed, and listed in
    reports/STEM-collect-refused.txt.
    """
    import fnmatch
    import os
    import pwd
    import stat

    inbound = exchange_root(root) / COURSE_ID / "inbound"
    if not inbound.is_dir():
        raise SystemExit(f"bn-course: {inbound}: no inbound folder (nothing was submitted)")
    entries = sorted(
        (e for e in os.scandir(inbound) if fnmatch.fnmatch(e.name, f"*+{stem}+*")),
        key=lambda e: e.name,
    )
    owners: dict[str, set[int]] = {}
    for entry in entries:
        owners.setdefault(entry.name.rsplit("+", 3)[0], set()).add(
            entry.stat(follow_symlinks=False).st_uid
        )

    def problem(entry) -> str:
        student = entry.name.rsplit("+", 3)[0]
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            return "the folder is a symbolic link"
        if not stat.S_ISDIR(st.st_mode):
            return "not a folder"
        try:
            account = pwd.getpwnam(student).pw_uid
        except KeyError:
            account = None
        if account is not None and st.st_uid != account:
            owner = _account_name(st.st_uid)
            return f"submitted under the id {student!r} by another account ({owner})"
        if account is None and len(owners[student]) > 1:
            return f"the folders of {student!r} belong to different accounts"
        for dirpath, dirnames, filenames in os.walk(entry.path, followlinks=False):
            for name in dirnames + filenames:
                inner = os.lstat(os.path.join(dirpath, name))
                mode = inner.st_mode
                if stat.S_ISLNK(mode):
                    return f"{name} is a symbolic link"
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    return f"{name} is not a regular file"
                # A hard link is a second name of a file that lives elsewhere (the course's
                # source notebook, where fs.protected_hardlinks is off, or another student's
                # file): `nbgrader submit` writes copies, each with one name and the
                # submitter's ownership.
                if stat.S_ISREG(mode) and inner.st_nlink > 1:
                    return f"{name} is a hard link ({inner.st_nlink} names for one file)"
                if inner.st_uid != st.st_uid:
                    return f"{name} belongs to another account ({_account_name(inner.st_uid)})"
        return ""

    refused = []
    with tempfile.TemporaryDirectory(prefix="bnlab-collect-") as tmp:
        staging = Path(tmp) / COURSE_ID / "inbound"
        staging.mkdir(parents=True)
        for entry in entries:
            reason = problem(entry)
            if reason:
                refused.append(f"{entry.name}: {reason}")
                continue
            for dirpath, _, filenames in os.walk(entry.path, followlinks=False):
                rel = Path(dirpath).relative_to(inbound)
                (staging / rel).mkdir(parents=True, exist_ok=True)
                for name in filenames:
                    _copy_regular(Path(dirpath) / name, staging / rel / name)
        nbgrader("collect", stem, "--update", f"--Exchange.root={tmp}", root=root)
    report = root / "reports" / f"{stem}-collect-refused.txt"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("".join(f"{line}\n" for line in refused), encoding="utf-8")
    for line in refused:
        print(f"bn-course collect: refused {line}", file=sys.stderr)
    return refused


def _account_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _copy_regular(source: Path, target: Path) -> None:
    """Copy a file that was checked to be regular, refusing it if it became anything else."""
    import os

    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    shutil.copystat(source, target, follow_symlinks=False)
