"""The instructor's side, seen in a real browser (headless Chromium, through Playwright).

1. The formgrader on a course graded by `bn-course grade`: a Jupyter server runs as a non-root
   instructor account on a copy of the course root; the test opens /formgrader, finds the
   assignment and the students, opens an autograded submission, reads the test cells' scores,
   enters a manual score, an extra credit and a comment, and then finds them in nbgrader's
   gradebook, in `bn-course export` and in the feedback regenerated for the learner.
2. The cohort report and a learner's feedback page, rendered: the histogram and the tables have
   a size on the page, and the screenshots are kept (BNLAB_SCREENSHOTS=folder keeps a copy).

The cohort is 02_forward_pass with three students: the solution, an untouched notebook and
one named mistake of the corpus (eps outside the square root).
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from corpus_tools import CORPUS, read_submission, submission

from conftest import CHROMIUM_ARGS, REPO, run_course

pytestmark = pytest.mark.slow

STEM = "02_forward_pass"
WRONG = "wrong_eps_outside_sqrt"
INSTRUCTOR = "bnlab-instructor"
BIN = Path(sys.executable).parent
CI = os.environ.get("CI") == "true"


def _unavailable(reason: str):
    """Fail under CI (where everything is installed and we run as root), skip elsewhere."""
    if CI:
        pytest.fail(reason)
    pytest.skip(reason)


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _unavailable("Debian's chromium is missing: `make test` installs it (apt-get)")
    return path


@pytest.fixture(scope="module")
def browser():
    path = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _tab(browser, allowed: tuple[str, ...], refused: list[str]):
    """A page that may load only `allowed` URL prefixes; anything else is refused and noted."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)

    def gate(route):
        url = route.request.url
        if url.startswith(allowed):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    context.route("**/*", gate)
    return context.new_page()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def _keep(png: Path) -> None:
    """A copy in $BNLAB_SCREENSHOTS, when set."""
    folder = os.environ.get("BNLAB_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(folder) / png.name)
    print(f"screenshot: {png}")


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory) -> Path:
    """A course root with 02_forward_pass released, three submissions, graded by the real
    command (sandboxed grading, feedback, CSV, report)."""
    root = tmp_path_factory.mktemp("formgrader") / "course"
    env = {"BNLAB_COURSE_ROOT": str(root)}
    run_course("release", STEM, env=env)
    wrong, _ = read_submission(CORPUS / STEM / f"{WRONG}.py")
    for student, answers in {"solution": {}, "blank": None, WRONG: wrong}.items():
        folder = root / "submitted" / student / STEM
        folder.mkdir(parents=True)
        (folder / f"{STEM}.ipynb").write_text(json.dumps(submission(STEM, answers)))
    run_course("grade", STEM, "--workers", "1", "--no-progress", env=env)
    return root


def _points() -> dict[str, float]:
    from bnlab.core.course import source_notebook

    return {
        c["id"]: float(c.metadata["nbgrader"]["points"])
        for c in source_notebook(STEM).cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }


# -- the instructor's account and its Jupyter server -------------------------------------------


def _instructor() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        _unavailable("needs root: it creates an instructor account and runs Jupyter as it")
    for tool in ("useradd", "runuser", "unshare", "mount", "chown"):
        if shutil.which(tool) is None:
            _unavailable(f"`{tool}` is missing (util-linux / passwd)")
    try:
        return pwd.getpwnam(INSTRUCTOR)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--create-home", "--shell", "/usr/sbin/nologin", INSTRUCTOR],
            check=True,
        )
        return pwd.getpwnam(INSTRUCTOR)


def _closed_ancestor(path: Path) -> Path | None:
    """The first folder on the way to `path` that other users cannot enter (e.g. /root, 0700)."""
    for folder in [*reversed(path.parents), path]:
        if folder != Path("/") and not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def _reach_python(user: str, stage: Path) -> str:
    """Shell lines that let `user` run the venv's interpreter.

    The venv's python may be a pyenv build under /root (mode 0700), which no other account can
    run. Then the server starts in a private mount namespace where that one folder is replaced
    by an empty tmpfs holding only the interpreter's installation (read-only, bind-mounted): the
    instructor's process keeps its own uid and no capability, and nothing changes outside it.
    """
    probe = subprocess.run(
        ["runuser", "-u", user, "--", sys.executable, "-c", "import nbgrader"],
        capture_output=True,
        cwd="/",
    )
    if probe.returncode == 0:
        return ""
    prefix = Path(sys.base_prefix).resolve()
    closed = _closed_ancestor(prefix)
    if closed is None or closed == prefix or REPO.is_relative_to(closed):
        pytest.fail(f"{user} cannot run {sys.executable}: {probe.stderr.decode()[-500:]}")
    q = shlex.quote
    return "\n".join(
        [
            f"mkdir -p {q(str(stage))}",
            f"mount --bind -o ro {q(str(prefix))} {q(str(stage))}",
            f"mount -t tmpfs -o mode=755 tmpfs {q(str(closed))}",
            f"mkdir -p {q(str(prefix))}",
            f"mount --move {q(str(stage))} {q(str(prefix))}",
        ]
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, url: str, token: str, log: Path, limit: float = 60):
    deadline = time.monotonic() + limit
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-3000:]
            pytest.fail(f"the Jupyter server exited ({proc.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    tail = log.read_text()[-3000:]
    pytest.fail(f"the Jupyter server did not answer {url} in {limit:.0f} s:\n{tail}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (runuser and jupyter), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def formgrader(graded_course):
    """A copy of the graded course root owned by the instructor, and a Jupyter server (nbgrader's
    server extensions enabled by the venv) started as the instructor, the way the README says:
    in autograder/ (nbgrader reads nbgrader_config.py there), with BNLAB_COURSE_ROOT naming the
    course root and the server's root_dir a folder above it."""
    user = _instructor()
    # Not under pytest's tmp folder: /tmp/pytest-of-root is 0700, closed to the instructor.
    work = Path(tempfile.mkdtemp(prefix="bnlab-formgrader-"))
    proc = None
    try:
        course = work / "course"
        shutil.copytree(graded_course, course, symlinks=True)
        for sub in ("home", "jupyter/config", "jupyter/data", "jupyter/runtime", "ipython"):
            (work / sub).mkdir(parents=True)
        subprocess.run(["chown", "-R", f"{user.pw_name}:", str(work)], check=True)
        token, port = secrets.token_hex(16), _free_port()
        env = {  # the whole environment of the server (runuser -p keeps it)
            "PATH": f"{BIN}:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(work / "home"),
            "USER": user.pw_name,
            "LOGNAME": user.pw_name,
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "BNLAB_COURSE_ROOT": str(course),
            "JUPYTER_TOKEN": token,  # not in argv, which `ps` shows to every user
            "JUPYTER_CONFIG_DIR": str(work / "jupyter/config"),
            "JUPYTER_DATA_DIR": str(work / "jupyter/data"),
            "JUPYTER_RUNTIME_DIR": str(work / "jupyter/runtime"),
            "IPYTHONDIR": str(work / "ipython"),
        }
        server = [
            str(BIN / "jupyter"),
            "server",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.open_browser=False",
            f"--ServerApp.root_dir={work}",
        ]
        q = shlex.quote
        script = "\n".join(
            [
                "set -e",
                _reach_python(user.pw_name, work / "stage"),
                f"cd {q(str(REPO / 'autograder'))}",
                f"exec runuser -p -u {q(user.pw_name)} -- " + " ".join(map(q, server)),
            ]
        )
        log = work / "server.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        base = f"http://127.0.0.1:{port}"
        _wait_ready(proc, f"{base}/api/status", token, log)
        uids = subprocess.run(
            ["ps", "-o", "uid=", "--ppid", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert uids == [str(user.pw_uid)], f"the server runs as uid {uids}"
        yield {"base": base, "token": token, "course": course, "log": log}
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(work, ignore_errors=True)


# -- 5. the formgrader -------------------------------------------------------------------------


def _grading_view_ready(page) -> None:
    """The grades and comments fetched and bound to their inputs.

    Not `formgrader.loaded`: offline, nbgrader's grading view fails to load MathJax from cdnjs
    and its init() stops at `MathJax.Hub` (ReferenceError), after the grades and comments are
    bound but before the keyboard shortcuts are registered. Scoring with the mouse still works.
    """
    page.wait_for_function(
        "() => window.formgrader && formgrader.grades && formgrader.grades.loaded"
        " && formgrader.comments && formgrader.comments.loaded"
    )


def _save(page, selector: str, value: str, api: str) -> dict:
    """Type into a formgrader input and leave it: nbgrader saves on `change` with a PUT."""
    with page.expect_response(
        lambda r: f"/formgrader/api/{api}/" in r.url and r.request.method == "PUT"
    ) as saved:
        page.fill(selector, value)
        page.locator(selector).blur()
    assert saved.value.status == 200, saved.value.text()
    return saved.value.json()


def test_formgrader_grades_a_bn_course_cohort_as_a_non_root_instructor(
    formgrader, browser, shots, tmp_path
):
    from nbgrader.api import Gradebook

    base, course = formgrader["base"], formgrader["course"]
    db = f"sqlite:///{course / 'gradebook.db'}"
    points = _points()
    _, failing = read_submission(CORPUS / STEM / f"{WRONG}.py")
    assert failing and set(failing) < set(points)
    expected_auto = {g: 0.0 if g in failing else p for g, p in points.items()}
    auto_total = sum(expected_auto.values())
    with Gradebook(db) as gb:
        assert gb.find_submission(STEM, WRONG).score == auto_total

    refused: list[str] = []
    page = _tab(browser, (base + "/",), refused)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # Logging in with the token; /formgrader redirects to Manage Assignments.
        page.goto(f"{base}/formgrader?token={formgrader['token']}")
        bad_setup = page.locator("#error-500").count()  # nbgrader's page for a wrong root_dir
        assert not bad_setup, "formgrader error: is the course root under the server's root_dir?"
        page.wait_for_url("**/formgrader/manage_assignments")
        page.locator("#main-table td.name").first.wait_for()
        assert page.locator("#main-table td.name").all_inner_texts() == [STEM]
        row = page.locator("#main-table tr").filter(has_text=STEM)
        assert row.locator("td.status").inner_text().strip() == "released"
        assert row.locator("td.num-submissions").inner_text().strip() == "3"

        page.goto(f"{base}/formgrader/manage_students")
        page.locator("#main-table td.id").first.wait_for()
        students = sorted(t.strip() for t in page.locator("#main-table td.id").all_inner_texts())
        assert students == sorted(["solution", "blank", WRONG])
        ids = page.locator("#main-table td.id").all_inner_texts()
        totals = page.locator("#main-table td.score").all_inner_texts()
        scores = {i.strip(): t.strip() for i, t in zip(ids, totals, strict=True)}
        assert scores["solution"] == "11 / 11" and scores["blank"] == "0 / 11"
        assert scores[WRONG] == f"{auto_total:g} / 11"

        # The learner's submission, from Manage Students, into the grading view.
        page.goto(f"{base}/formgrader/manage_students/{WRONG}/{STEM}")
        link = page.locator("#main-table td.name a[href*='/formgrader/submissions/']")
        link.wait_for()
        link.click()
        page.wait_for_url("**/formgrader/submissions/*/")
        _grading_view_ready(page)
        assert WRONG in page.locator("a.name-shown").first.text_content()
        for grade_id, score in expected_auto.items():
            box = page.locator(f"input.score#{grade_id}")
            assert box.is_visible(), grade_id
            assert float(box.get_attribute("placeholder")) == score, grade_id  # the auto score
            assert box.input_value() == "", grade_id  # no manual score yet
            heading = page.locator(".nbgrader_cell .panel-heading", has=box)
            assert f"/ {points[grade_id]}" in heading.inner_text(), grade_id
        # The failing tests' output is there for the instructor, diagnosis included.
        assert "eps outside the square root" in page.locator("body").inner_text()

        # Manual grading: 1 point back on test_eps, 0.5 extra credit, a comment on the answer.
        comment = "Good start; eps belongs inside the square root."
        saved = _save(page, "input.score#test_eps", "1", "grade")
        assert saved["manual_score"] == 1.0 and saved["auto_score"] == 0.0
        saved = _save(page, "input#test_torch_extra_credit", "0.5", "grade")
        assert saved["extra_credit"] == 0.5
        saved = _save(page, "textarea#batchnorm_forward-comment", comment, "comment")
        assert saved["manual_comment"] == comment

        page.reload()  # what the server kept
        _grading_view_ready(page)
        assert page.input_value("input.score#test_eps") == "1"
        assert page.input_value("input#test_torch_extra_credit") == "0.5"
        assert page.input_value("textarea#batchnorm_forward-comment") == comment
        page.locator("input.score#test_torch").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "formgrader-submission.png"))
        _keep(shots / "formgrader-submission.png")
        page.goto(f"{base}/formgrader/manage_students")
        page.locator("#main-table td.id").first.wait_for()
        row = page.locator("#main-table tr").filter(has_text=WRONG)
        assert row.locator("td.score").inner_text().strip() == f"{auto_total + 1.5:g} / 11"
    finally:
        page.context.close()
    # Only nbgrader's own MathJax (cdnjs) was asked for outside the server, and refused; the
    # only script errors are its absence (see _grading_view_ready).
    assert all("MathJax is not defined" in e for e in errors), errors
    assert all("mathjax" in url.lower() for url in refused), refused

    with Gradebook(db) as gb:
        eps = gb.find_grade("test_eps", STEM, STEM, WRONG)
        assert (eps.auto_score, eps.manual_score, eps.score) == (0.0, 1.0, 1.0)
        torch = gb.find_grade("test_torch", STEM, STEM, WRONG)
        assert (torch.extra_credit, torch.score) == (0.5, 0.5)
        assert gb.find_comment("batchnorm_forward", STEM, STEM, WRONG).manual_comment == comment
        assert gb.find_submission(STEM, WRONG).score == auto_total + 1.5
        assert gb.find_submission(STEM, "solution").score == 11.0

    env = {"BNLAB_COURSE_ROOT": str(course)}
    grades = tmp_path / "grades.csv"
    run_course("export", "--to", str(grades), env=env)
    with open(grades, newline="", encoding="utf-8") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == sorted(["solution", "blank", WRONG])
    assert float(rows[WRONG]["score"]) == auto_total + 1.5 and rows[WRONG]["status"] == "graded"
    assert float(rows["solution"]["score"]) == 11.0 and float(rows["blank"]["score"]) == 0.0

    # The learner's feedback, regenerated, carries the instructor's comment and the new score.
    run_course("feedback", STEM, "--student", WRONG, env=env)
    html = (course / "feedback" / WRONG / STEM / f"{STEM}.html").read_text(encoding="utf-8")
    assert comment in html
    assert f"Score: {auto_total + 1.5} / 11.0" in html
    assert "BEGIN HIDDEN TESTS" not in html


# -- 6. the cohort report and a feedback page, rendered ------------------------------------------


def _box(page, selector: str) -> dict:
    element = page.locator(selector).first
    assert element.is_visible(), selector
    box = element.bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0, (selector, box)
    return box


def test_report_and_feedback_render_in_chromium(graded_course, browser, shots):
    report = graded_course / "reports" / f"{STEM}-report.html"
    feedback = graded_course / "feedback" / WRONG / STEM / f"{STEM}.html"
    refused: list[str] = []
    page = _tab(browser, ("file://", "data:"), refused)
    try:
        page.goto(report.as_uri(), wait_until="load")
        histogram = _box(page, "svg[aria-label^='Histogram']")
        assert histogram["width"] >= 300 and histogram["height"] >= 100, histogram
        # Bars with a height for the three scores (0, 4, 11): three non-empty bins.
        bars = page.locator("svg[aria-label^='Histogram'] rect").evaluate_all(
            "rects => rects.map(r => r.getBoundingClientRect().height)"
        )
        assert sum(1 for h in bars if h > 0) >= 3, bars
        tables = page.locator("table")
        assert tables.count() >= 2
        for i in range(tables.count()):
            assert tables.nth(i).is_visible() and tables.nth(i).locator("tr").count() >= 2
        text = page.locator("body").inner_text()
        assert "re-teach" in text and "eps outside the square root" in text
        page.screenshot(path=str(shots / f"{STEM}-report.png"), full_page=True)
        _keep(shots / f"{STEM}-report.png")
        assert not refused, f"the report asked for {refused[:3]}"

        page.goto(feedback.as_uri(), wait_until="load")
        _box(page, "#notebook-container")
        score_line = page.get_by_text("(Score: 4.0 / 11.0)", exact=False).first
        assert score_line.is_visible()
        for cell in ("test_shape", "test_eps"):
            _box(page, f"[id='cell-id={cell}']")
        body = page.locator("body").inner_text()
        assert "eps outside the square root" in body
        assert "BEGIN HIDDEN TESTS" not in body
        page.screenshot(path=str(shots / f"{STEM}-feedback-{WRONG}.png"), full_page=False)
        _keep(shots / f"{STEM}-feedback-{WRONG}.png")
    finally:
        page.context.close()
    # The feedback page (nbconvert's template) asks only for MathJax, which is offline here.
    assert all("mathjax" in url.lower() for url in refused), refused
    for png in shots.glob("*.png"):
        assert png.stat().st_size > 10_000, png
