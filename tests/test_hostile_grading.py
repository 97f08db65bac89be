"""The adversarial corpus (tests/adversarial_cases.py) through the real grading command.

One batch: honest students, attacks and broken files side by side, graded by
`bn-course grade 02_forward_pass --workers 2` in a scratch course root. Each case must get its
exact outcome, and the honest students beside them must be graded correctly. A second run
grades the attacks that steal an answer with `--unsafe-no-sandbox`: there they score full
marks, which shows that the sandbox, not luck, is what stops them.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest
from adversarial_cases import MAX, STEM, XSS_MARKDOWN, Case, build, cases, solution

from bnlab.grading import ledger, untrusted
from bnlab.grading import report as report_module
from conftest import REPO, run_course

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None and os.environ.get("CI") != "true",
    reason="bubblewrap is not installed (sudo apt-get install bubblewrap)",
)


class SolutionServer:
    """Serves the solution's code to anyone who connects, and counts the connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        payload = solution("batchnorm_forward").encode()
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.sendall(payload)

    def close(self):
        self.sock.close()


def make_batch(root: Path, selected: list[Case]) -> None:
    released = json.loads((root / "release" / STEM / f"{STEM}.ipynb").read_text())
    for case in selected:
        if case.folder_link:
            (root / "submitted" / case.student).symlink_to(root / "submitted" / case.folder_link)
            continue
        folder = root / "submitted" / case.student / STEM
        folder.mkdir(parents=True)
        for name, data in build(case, released).items():
            (folder / name).write_bytes(data)
        for name, target in case.links.items():
            (folder / name).symlink_to(target)


def ledger_rows(root: Path) -> dict[str, dict]:
    gb = ledger.open_gradebook(f"sqlite:///{root / 'gradebook.db'}")
    try:
        rows = ledger.rows(gb, STEM)
    finally:
        gb.close()
    return {r["student"]: {**r, "summary": json.loads(r["summary"])} for r in rows}


@pytest.fixture(scope="module")
def server():
    s = SolutionServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, server):
    root = tmp_path_factory.mktemp("hostile-course")
    env = {"BNLAB_COURSE_ROOT": str(root)}
    run_course("release", STEM, env=env)
    selected = cases({"root": root, "repo": REPO, "port": server.port})
    make_batch(root, selected)
    peak, log = grade_measuring_peak_rss(root, env)
    return {
        "root": root,
        "cases": selected,
        "rows": ledger_rows(root),
        "log": log,
        "peak_rss": peak,
    }


BATCH_DEADLINE_S = 900  # the whole batch takes 1-3 minutes; a blocked grader never ends


def grade_measuring_peak_rss(root: Path, env: dict) -> tuple[int, str]:
    """Run `bn-course grade` on the batch; return the grading process's own peak RSS (VmHWM,
    read from /proc while it runs: its local Dask workers are threads of it; the sandboxes are
    separate processes, limited by their cgroups) and its stdout."""
    import subprocess
    import time

    from conftest import BN_COURSE

    args = [BN_COURSE, "grade", STEM, "--workers", "2", "--time-limit", "20", "--no-progress"]
    with subprocess.Popen(
        args, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True
    ) as proc:
        peak = 0
        status = Path(f"/proc/{proc.pid}/status")
        deadline = time.monotonic() + BATCH_DEADLINE_S
        while proc.poll() is None:
            if time.monotonic() > deadline:  # a grader that blocks (a FIFO it opened) fails
                proc.kill()
                pytest.fail(f"the batch was not graded within {BATCH_DEADLINE_S} s")
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
            except OSError:
                pass
            time.sleep(0.2)
        log = proc.stdout.read()
    assert proc.returncode == 0, log
    return peak, log


def _case_ids():
    return [c.student for c in cases({"root": "R", "repo": "R", "port": 0})]


def outcome_problems(case: Case, rows: dict[str, dict]) -> list[str]:
    """How a case's row differs from its exact expected outcome (empty: as expected)."""
    row = rows.get(untrusted.shown_name(case.student))  # the id as the gradebook stores it
    if row is None:
        return ["no row in the ledger"]
    summary = row["summary"]
    if case.expect is None:
        problems = [] if row["status"] == "not graded" else [f"status {row['status']}"]
        if case.reason not in row["reason"]:
            problems.append(f"reason {row['reason']!r}")
        return problems + ([] if row["score"] is None else [f"score {row['score']}"])
    if row["status"] != "graded":
        return [f"{row['status']}: {row['reason']}"]
    problems = []
    got = {gid: cell["score"] for gid, cell in summary["cells"].items()}
    if got != case.expect:
        problems.append(f"scores {got}")
    if row["max_score"] != MAX:  # edited points never change what a test is worth
        problems.append(f"max_score {row['max_score']}")
    for gid in case.reason_cells:
        if not any(case.reason in r for r in summary["cells"][gid]["reasons"]):
            problems.append(f"{gid}: no {case.reason!r} in {summary['cells'][gid]['reasons']}")
    if case.diagnosis:
        gid, name = case.diagnosis
        if name not in summary["cells"][gid]["diagnoses"]:
            problems.append(f"{gid}: not diagnosed {name!r}")
    if case.note and not any(case.note in n for n in summary["notes"]):
        problems.append(f"no note {case.note!r} in {summary['notes']}")
    return problems


@pytest.mark.parametrize("student", _case_ids())
def test_each_case_gets_its_exact_outcome(hostile, student):
    case = next(c for c in hostile["cases"] if c.student == student)
    assert outcome_problems(case, hostile["rows"]) == [], hostile["rows"].get(
        untrusted.shown_name(student)
    )


def test_no_attack_scores_above_its_honest_part(hostile):
    honest = hostile["rows"]["s02_honest_identity"]["score"]
    assert honest == 1.0
    for student, row in hostile["rows"].items():
        if student.startswith("a") and row["score"] is not None and row["score"] > honest:
            # only the attacks whose honest part is the full solution may score above 1
            case = next(c for c in hostile["cases"] if c.student == student)
            assert sum(case.expect.values()) == row["score"], (student, row["score"])


def test_gradebook_holds_exactly_the_judged_grades(hostile):
    """The gradebook attack changed nothing; every graded cell has the judged score."""
    from nbgrader.api import Gradebook

    rows = hostile["rows"]
    with Gradebook(f"sqlite:///{hostile['root'] / 'gradebook.db'}") as gb:
        for student, row in rows.items():
            if row["status"] != "graded":
                continue
            nb = gb.find_submission_notebook(STEM, STEM, student)
            for grade in nb.grades:
                assert grade.manual_score is None, (student, grade.name)
                assert grade.auto_score == row["summary"]["cells"][grade.name]["score"]
            assert nb.score == row["score"]


def test_csv_tells_not_graded_from_zero(hostile):
    path = hostile["root"] / "reports" / f"{STEM}-grades.csv"
    lines = {r["student"]: r for r in csv.DictReader(path.open(encoding="utf-8"))}
    assert set(lines) == {untrusted.shown_name(c.student) for c in hostile["cases"]}
    assert lines["s03_honest_no_answer"]["score"] == "0"
    assert lines["s03_honest_no_answer"]["status"] == "graded"
    assert lines["c01_invalid_json"]["score"] == ""
    assert lines["c01_invalid_json"]["status"].startswith("not graded: not valid JSON")


def test_nothing_escaped_the_sandbox(hostile, server):
    root = hostile["root"]
    assert server.connections == 0
    assert not (root / "pwned").exists()  # the forged pickle was never unpickled
    assert not (root / "autograded" / "forged.txt").exists()


def _autograded(hostile, student: str) -> dict:
    path = hostile["root"] / "autograded" / student / STEM / f"{STEM}.ipynb"
    return json.loads(path.read_text(encoding="utf-8"))


def test_locked_cells_and_metadata_come_from_the_course(hostile):
    nb = _autograded(hostile, "a07_edit_locked_and_test_cells")
    text = {
        c["metadata"].get("nbgrader", {}).get("grade_id"): "".join(c["source"])
        for c in nb["cells"]
    }
    assert "checks.check(" in text["test_torch"] and "seed=13" in text["test_torch"]
    assert "class checks" not in text["imports"]

    nb = _autograded(hostile, "a08_edit_points_and_metadata")
    by_id = {c["metadata"].get("nbgrader", {}).get("grade_id"): c for c in nb["cells"]}
    assert by_id["test_torch"]["metadata"]["nbgrader"]["points"] == 2
    assert by_id["batchnorm_forward"]["metadata"]["nbgrader"].get("points") is None
    bonus = next(c for c in nb["cells"] if c["id"] == "bonus")
    assert "nbgrader" not in bonus["metadata"]  # an invented graded cell carries no points


def test_feedback_never_shows_hidden_tests(hostile):
    pages = list((hostile["root"] / "feedback").glob(f"*/{STEM}/{STEM}.html"))
    graded = [s for s, r in hostile["rows"].items() if r["status"] == "graded"]
    assert len(pages) == len(graded)
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "seed=" not in text and "HIDDEN TESTS" not in text, page


def test_report_lists_not_graded_apart(hostile):
    html = (hostile["root"] / "reports" / f"{STEM}-report.html").read_text(encoding="utf-8")
    assert "c05_renamed_notebook" in html
    assert "<script" not in html


def test_the_stealing_attacks_pay_without_the_sandbox(tmp_path, server):
    """Unsandboxed, the attacks that read files, the network or hide a framework call score
    full marks: the protections above are what stop them."""
    root = tmp_path / "course"
    env = {"BNLAB_COURSE_ROOT": str(root)}
    run_course("release", STEM, env=env)
    selected = [
        c
        for c in cases({"root": root, "repo": REPO, "port": server.port})
        if c.unsandboxed_full or c.student == "s01_honest_full"
    ]
    assert len(selected) == 5
    make_batch(root, selected)
    before = server.connections
    run_course(
        "grade",
        STEM,
        "--workers",
        "1",
        "--unsafe-no-sandbox",
        "--no-feedback",
        "--no-progress",
        env=env,
    )
    rows = ledger_rows(root)
    for case in selected:
        assert rows[case.student]["score"] == MAX, (case.student, rows[case.student]["summary"])
    assert server.connections == before + 1


# Each protection of the trusted side, switched off in the grading process (the code that
# `bn-course grade` runs first), and the attacks of the batch it stops.
PROTECTIONS_OFF = {
    "npz_caps": (
        "import bnlab.grading.untrusted as u\n"
        "u.NPZ_LIMIT = u.ARRAYS_LIMIT = u.MAX_MEMBERS = 2**40\n",
        ("a20_npz_decompression_bomb", "a21_npz_many_members"),
    ),
    "output_caps": (
        "import bnlab.grading.grader as g, bnlab.grading.untrusted as u\n"
        "g.MESSAGE_CHARS = g.CELL_OUTPUT_CHARS = g.SUBMISSION_OUTPUT_CHARS = 2**40\n"
        "u.TEXT_LIMIT = u.MAX_ERRORS = 2**40\n",
        # (a22's forged messages stay small even so: the checks' own wording of a probe's
        # errors keeps 500 characters of each and 3 framework calls, bnlab/checks/harness.py)
        ("a25_cell_output_flood",),
    ),
    "learner_text_made_writable": (
        "import bnlab.grading.untrusted as u\nu.clean = lambda value, depth=0: value\n",
        ("a26_lone_surrogates",),
    ),
    "names_shown_as_text": (
        "import bnlab.grading.untrusted as u\nu.shown_name = lambda name: name\n",
        (os.fsdecode(b"c17_student_\xff"), "c18_non_utf8_notebook_name"),
    ),
    "markdown_made_inert": (
        "import bnlab.grading.untrusted as u\n"
        "u.safe_markdown = lambda s: ''.join(s) if isinstance(s, list) else str(s)\n",
        ("a27_html_in_markdown",),
    ),
}
HONEST_NEIGHBOURS = ("s01_honest_full", "s02_honest_identity")  # full marks; a wrong baseline


@pytest.mark.parametrize("protection", sorted(PROTECTIONS_OFF))
def test_the_batch_fails_with_a_protection_switched_off(protection, tmp_path, server):
    """The batch's own checks (exact outcome, bytes written, live markup) on its attacks,
    graded beside an honest student and a wrong baseline with one protection of the trusted side
    switched off: the checks fail (or the whole run breaks), so they test the protection. As
    shipped, the neighbours are graded exactly and the run ends with its CSV."""
    import subprocess

    patch, attacks = PROTECTIONS_OFF[protection]
    main = "import sys\nfrom bnlab.cli import main\nsys.argv[0] = 'bn-course'\nsys.exit(main())\n"
    args = ["grade", STEM, "--workers", "2", "--time-limit", "20", "--no-progress"]
    for mode, code in (("shipped", ""), ("off", patch)):
        root = tmp_path / mode
        env = {"BNLAB_COURSE_ROOT": str(root)}
        run_course("release", STEM, env=env)
        selected = [
            c
            for c in cases({"root": root, "repo": REPO, "port": server.port})
            if c.student in attacks + HONEST_NEIGHBOURS
        ]
        make_batch(root, selected)
        done = subprocess.run(
            [os.sys.executable, "-c", code + main, *args],
            cwd=REPO,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if mode == "off" and (
            done.returncode not in (0, 1) or not (root / "reports" / f"{STEM}-grades.csv").exists()
        ):
            print(f"{protection} off: the run broke (exit {done.returncode})")
            return  # switched off, the attack stopped the whole run: no CSV, no grades
        # Switched off, a submission may become a grader error (exit 1); the others go on.
        assert done.returncode in ((0,) if mode == "shipped" else (0, 1)), done.stderr[-3000:]
        assert (root / "reports" / f"{STEM}-grades.csv").is_file()
        rows = ledger_rows(root)
        assert rows["s01_honest_full"]["score"] == MAX
        assert rows["s02_honest_identity"]["score"] == 1.0
        problems = {
            c.student: outcome_problems(c, rows) + written_problems(root, c)
            for c in selected
            if c.student in attacks
        }
        if "a27_html_in_markdown" in attacks:
            problems["a27_html_in_markdown"] += markdown_problems(root)
        if not code:
            assert all(p == [] for p in problems.values()), problems
    print(f"{protection} off: {problems}")
    assert all(problems.values()), problems  # every attack gets through once switched off


def test_grader_refuses_without_bubblewrap(tmp_path):
    """No sandbox tool: refuse (exit 2, the fix named) rather than grade unsandboxed."""
    root = tmp_path / "course"
    (root / "submitted" / "s1" / STEM).mkdir(parents=True)
    env = {"BNLAB_COURSE_ROOT": str(root), "PATH": str(Path(os.sys.executable).parent)}
    proc = run_course("grade", STEM, "--no-progress", env=env, check=False)
    assert proc.returncode == 2
    assert "bubblewrap" in proc.stderr and "--unsafe-no-sandbox" in proc.stderr


def test_what_the_grader_writes_stays_bounded(hostile):
    """Floods of messages or cell output do not become huge notebooks or feedback pages."""
    root = hostile["root"]
    for case in hostile["cases"]:
        assert written_problems(root, case) == []
    text = json.dumps(_autograded(hostile, "a22_message_flood"))
    assert text.count("restore the points") < 200  # the forged text is cut, not multiplied
    flood = _autograded(hostile, "a25_cell_output_flood")
    shown = sum(len(o.get("text", "")) for c in flood["cells"] for o in c.get("outputs", []))
    assert shown <= 1_100_000  # 3000 cells printed 15 MB; the submission's output is capped


def written_problems(root: Path, case: Case) -> list[str]:
    """Whether what the grader wrote for a case (autograded notebook, feedback) is past its cap."""
    if case.max_written is None:
        return []
    written = sum(
        p.stat().st_size
        for top in ("autograded", "feedback")
        for p in (root / top / case.student).rglob("*")
        if p.is_file()
    )
    return [] if 0 < written <= case.max_written else [f"{written} bytes written"]


def test_links_are_never_followed_into_course_files(hostile):
    """A symlinked timestamp.txt pointing at the course's source notebook is not copied into
    autograded/ or feedback/: the student never receives the solutions or hidden tests."""
    root = hostile["root"]
    for top in ("autograded", "feedback"):
        for path in (root / top / "c15_symlinked_timestamp").rglob("*"):
            assert not path.is_symlink(), path
    folder = root / "autograded" / "c15_symlinked_timestamp" / STEM
    assert not (folder / "timestamp.txt").exists()  # the link was not copied, nor its target
    page = root / "feedback" / "c15_symlinked_timestamp" / STEM / f"{STEM}.html"
    assert "BEGIN HIDDEN TESTS" not in page.read_text(encoding="utf-8")
    assert "seed=7" not in page.read_text(encoding="utf-8")
    assert hostile["rows"]["c16_symlinked_student_folder"]["status"] == "not graded"
    assert hostile["rows"]["s01_honest_full"]["score"] == MAX  # the linked-to student is intact


def test_the_graders_memory_stays_bounded(hostile):
    """The batch holds an npz bomb (128 MiB declared in 130 kB), 5,000-member npz files,
    floods of messages and output; the grader refuses them before loading, so its own peak RSS
    stays that of grading an honest cohort (the references come from the primer process)."""
    peak = hostile["peak_rss"]
    print(f"grader peak RSS: {peak / 2**20:.0f} MiB")
    assert 0 < peak < 512 * 2**20, peak  # 162 MiB measured (2026-12-05)


def test_the_run_finished_with_csv_and_report(hostile):
    assert (hostile["root"] / "reports" / f"{STEM}-grades.csv").is_file()
    assert (hostile["root"] / "reports" / f"{STEM}-report.html").is_file()


def markdown_problems(root: Path) -> list[str]:
    """Live markup left in the autograded notebook of the case whose markdown carries <script>,
    onerror= and javascript: links, HTML and markdown alike (rendered as nbconvert renders it
    without sanitizing, as a formgrader not configured to would show it)."""
    from test_untrusted import live_script_urls

    path = root / "autograded" / "a27_html_in_markdown" / STEM / f"{STEM}.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    source = "".join(next(c for c in nb["cells"] if c["id"] == "xss")["source"])
    problems = [f"{bad!r} in the source" for bad in ("<script", "onerror") if bad in source]
    if "&lt;script&gt;" not in source or "[a markdown link]" not in source:
        problems.append("the learner's text is not shown")
    return problems + [f"live link {url}" for url in live_script_urls(source)]


def test_learner_html_never_runs_in_the_pages_an_instructor_opens(hostile):
    """The feedback page of a submission whose markdown carries <script>, onerror= and
    javascript: links, opened in headless Chromium: nothing of it runs. The autograded notebook
    (which the formgrader renders) holds the markup escaped."""
    from test_book import chromium

    assert markdown_problems(hostile["root"]) == []
    page = hostile["root"] / "feedback" / "a27_html_in_markdown" / STEM / f"{STEM}.html"
    report = hostile["root"] / "reports" / f"{STEM}-report.html"
    assert "Content-Security-Policy" in report.read_text(encoding="utf-8")
    browser_path = chromium()
    if browser_path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get)")
        pytest.skip("chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=browser_path,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
        )
        try:
            tab = browser.new_page()
            tab.route(
                "**/*",
                lambda r: (
                    r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort()
                ),
            )
            for target in (page, report):
                tab.goto(target.as_uri())
                tab.wait_for_timeout(300)
                assert tab.title() != "pwned", target
                assert tab.evaluate("typeof window.pwned") == "undefined", target
            # The same markup unsanitized does run: the browser check can fail.
            control = hostile["root"] / "control.html"
            control.write_text(f"<html><body>{XSS_MARKDOWN}</body></html>", encoding="utf-8")
            tab.goto(control.as_uri())
            tab.wait_for_timeout(300)
            assert tab.evaluate("typeof window.pwned") == "number"
            # The feedback pages' CSP is a second wall: the same unsanitized markup in a page
            # that got it does not run.
            walled = hostile["root"] / "walled" / "feedback" / "x" / STEM / f"{STEM}.html"
            walled.parent.mkdir(parents=True)
            walled.write_text(f"<html><head></head><body>{XSS_MARKDOWN}</body></html>")
            assert report_module.secure_feedback_pages(hostile["root"] / "walled", STEM) == 1
            tab.goto(walled.as_uri())
            tab.wait_for_timeout(300)
            assert tab.evaluate("typeof window.pwned") == "undefined"
            assert report_module.FEEDBACK_CSP in page.read_text(encoding="utf-8")
            tab.goto(page.as_uri())
            # The only script the page loads is MathJax, from the one folder the CSP allows.
            scripts = [s.get_attribute("src") for s in tab.query_selector_all("script[src]")]
            assert scripts and all(s.startswith(report_module.MATHJAX_PREFIX) for s in scripts)
            for link in tab.query_selector_all("a"):
                assert not (link.get_attribute("href") or "").startswith("javascript:")
        finally:
            browser.close()


# Attacks whose own code reaches into the interpreter or the grader (bnlab.grading.review).
REVIEWED = (
    "a01_patch_numpy_comparators",
    "a02_patch_grader_modules",
    "a03_patch_builtins",
    "a10_hidden_torch_call_guard_blinded",
    "a11_read_solutions",
    "a15_forged_result_files",
    "a20_npz_decompression_bomb",
    "a24_symlinks_in_out",
)


def test_code_reaching_into_the_interpreter_is_listed_for_review(hostile):
    """Listed in the CSV and the report, for the instructor, never in the learner's feedback;
    honest students are not listed, and nobody's score moves (the exact outcomes above)."""
    path = hostile["root"] / "reports" / f"{STEM}-grades.csv"
    lines = {r["student"]: r for r in csv.DictReader(path.open(encoding="utf-8"))}
    for student in ("s02_honest_identity", "s03_honest_no_answer"):
        assert lines[student]["review"] == "", student
    for student in REVIEWED:
        assert lines[student]["review"].startswith("batchnorm_forward, line "), student
        assert hostile["rows"][student]["summary"]["review"], student
    assert "replaces numpy.allclose" in lines["a01_patch_numpy_comparators"]["review"]
    assert "sys.setprofile" in lines["a10_hidden_torch_call_guard_blinded"]["review"]
    html = (hostile["root"] / "reports" / f"{STEM}-report.html").read_text(encoding="utf-8")
    section = html[html.index('<section id="review">') :]
    section = section[: section.index("</section>")]
    assert all(f"<code>{s}</code>" in section for s in REVIEWED)
    assert "s02_honest_identity" not in section
    for student in REVIEWED:
        page = hostile["root"] / "feedback" / student / STEM / f"{STEM}.html"
        if page.exists():
            assert "replaces numpy" not in page.read_text(encoding="utf-8"), student
