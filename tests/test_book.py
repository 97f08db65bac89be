"""The built learner edition: offline, no solutions, no stderr noise, math rendered in Chromium."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from bs4 import BeautifulSoup

from bnlab.core import course
from conftest import CHROMIUM_ARGS, REPO

BOOK_SOURCES = sorted((REPO / "book").glob("*.md"))


def pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.parts)


def text_of(page: Path) -> str:
    return BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser").get_text()


def test_every_chapter_is_built(learner_book):
    for source in BOOK_SOURCES:
        assert (learner_book / "book" / f"{source.stem}.html").is_file(), source.name
    assert (learner_book / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_no_page_loads_a_remote_script_or_stylesheet(learner_book):
    remote = re.compile(r"^(https?:)?//", re.IGNORECASE)
    for page in pages(learner_book):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for tag in soup.find_all(["script", "link", "img", "iframe"]):
            url = tag.get("src") or (tag.get("href") if tag.name == "link" else None)
            if (
                tag.name == "link"
                and "stylesheet" not in (tag.get("rel") or [])
                and tag.get("as") not in ("script", "style", "font")
            ):
                continue
            assert not (url and remote.match(url)), f"{page.name} loads {url}"


def _code_lines(text: str) -> list[str]:
    return [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]


def solution_windows(size: int = 3) -> set[str]:
    """Every run of `size` consecutive code lines inside the exercises' solution blocks.

    A leak shows a solution's lines together; single generic lines (`def forward(self, x):`,
    `super().__init__()`) also occur in honest chapter code and prove nothing.
    """
    windows = set()
    for stem in course.stems():
        for cell in course.source_notebook(stem).cells:
            for block in cell.source.split("### BEGIN SOLUTION")[1:]:
                lines = _code_lines(block.split("### END SOLUTION")[0])
                windows |= {"\n".join(lines[i : i + size]) for i in range(len(lines) - size + 1)}
    return windows


def test_learner_book_contains_no_solution_code(learner_book):
    windows = solution_windows()
    assert len(windows) >= 20
    for page in pages(learner_book):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        code = "\n".join("\n".join(_code_lines(pre.get_text())) for pre in soup.find_all("pre"))
        text = "\n".join(_code_lines(soup.get_text()))
        leaked = [w for w in windows if w in code or w in text]
        assert not leaked, f"{page.relative_to(learner_book)} shows solution code: {leaked[:2]}"


def _words(text: str) -> str:
    text = re.sub(r"\$[^$]*\$|\\\(.*?\\\)|\{[a-z:]+\}`[^`]*`", " ", text, flags=re.S)
    return " ".join(w for w in re.findall(r"[A-Za-z]+", text) if len(w) > 2)


def chapter_answers() -> list[str]:
    """The first words of each {solution} directive's body, math and roles removed."""
    answers = []
    for source in BOOK_SOURCES:
        for block in re.findall(r"```\{solution\}.*?\n(.*?)```", source.read_text(), re.S):
            body = "\n".join(ln for ln in block.splitlines() if not ln.startswith(":"))
            answers.append(" ".join(_words(body).split()[:6]))
    return answers


def test_learner_book_hides_answers_to_chapter_questions(learner_book):
    answers = chapter_answers()
    assert answers
    text = _words(" ".join(text_of(p) for p in pages(learner_book)))
    for answer in answers:
        assert answer not in text, answer


def test_no_stderr_in_pages(learner_book):
    for page in pages(learner_book):
        html = page.read_text(encoding="utf-8")
        assert "stderr" not in html and "WARNING: All log messages" not in html, page.name


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def served_book(learner_book):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(learner_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", learner_book
    server.shutdown()


def test_math_renders_offline_in_headless_chromium(served_book):
    browser_path = chromium()
    if browser_path is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get)")
        pytest.skip("chromium not installed; `make test` as root installs it")
    from playwright.sync_api import sync_playwright

    base, _ = served_book
    shots = REPO / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    remote, failed = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=browser_path,
            args=CHROMIUM_ARGS,
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def gate(route):
            host = urlparse(route.request.url).hostname
            if host == "127.0.0.1" or route.request.url.startswith("data:"):
                route.continue_()
            else:  # the network is off: record and refuse anything else
                remote.append(route.request.url)
                route.abort()

        context.route("**/*", gate)
        page = context.new_page()
        page.on(
            "response",
            lambda r: (
                r.status >= 400
                and not r.url.endswith("/favicon.ico")  # requested by the browser, not the page
                and failed.append(f"{r.status} {r.url}")
            ),
        )
        page.on("requestfailed", lambda r: failed.append(f"failed {r.url}"))
        rendered = {}
        for source in BOOK_SOURCES:
            url = f"{base}/book/{source.stem}.html"
            page.goto(url, wait_until="load")
            if page.locator("script[src*='mathjax']").count():
                page.wait_for_function("() => !!(window.MathJax && MathJax.startup)")
                page.evaluate("async () => { await MathJax.startup.promise; return true; }")
            article = page.inner_text("article")
            rendered[source.stem] = page.locator("mjx-container").count()
            for raw in ("$$", "\\[", "\\frac", "\\begin{"):
                assert raw not in article, f"{source.stem}: raw TeX {raw!r} left in the page"
            page.screenshot(path=str(shots / f"{source.stem}.png"), full_page=False)
        browser.close()
    assert rendered["02_forward_pass"] >= 10, rendered
    assert not remote, f"pages requested remote URLs: {remote[:5]}"
    assert not failed, f"local requests failed: {failed[:5]}"


def test_instructor_edition_shows_the_answers(learner_book):
    from conftest import run_course

    run_course("book", "--edition", "instructor")
    html = REPO / "_build" / "instructor" / "_build" / "html"
    text = _words(" ".join(text_of(p) for p in pages(html)))
    for answer in chapter_answers():
        assert answer in text, answer


def test_chapters_link_their_learner_notebooks_and_nothing_else(learner_book):
    launches, downloads = [], []
    for page in pages(learner_book):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        launches += [a["href"] for a in soup.select("a.launch-notebook")]
        downloads += [
            a["href"] for a in soup.find_all("a", href=True) if "_notebooks/" in a["href"]
        ]
        for a in soup.find_all("a", href=True):
            assert "solutions/" not in a["href"], f"{page.name} links {a['href']}"
    stems = {p.stem for p in (REPO / "notebooks").glob("*.ipynb")}
    linked = {h.rsplit("/", 1)[-1].removesuffix(".ipynb") for h in downloads}
    assert linked == stems  # every exercise is linked from the book
    assert launches and all(re.search(r"[/=]notebooks/\d\d_\w+\.ipynb$", h) for h in launches)
    for stem in stems:  # the download is the learner notebook itself, offline
        built = learner_book / "_notebooks" / f"{stem}.ipynb"
        assert built.read_bytes() == (REPO / "notebooks" / f"{stem}.ipynb").read_bytes()
