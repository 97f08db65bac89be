"""The three editions of the book: learner, self-study, instructor.

* learner (default): the answers to the chapter questions are not in the pages at all;
* self-study: every answer is in the page, inside a closed <details> the reader must open;
* instructor: the answers are shown as the chapters write them.

No edition holds an exercise notebook's solution (those are graded). The edition logic is tested
here on a small Sphinx project with the book's own extensions, built in a temporary folder; the
last test builds the real book's self-study edition (slow, like tests/test_book.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from bnlab.book import build, sphinx_ext
from conftest import REPO, run_course

QUESTION = "What does a layer of batch normalization compute on one feature?"
ANSWER = "Quaggas normalize zebras by subtracting the batch mean."

PROJECT = {
    "conf.py": """
        extensions = ["sphinx_exercise", "sphinx_togglebutton", "bnlab.book.sphinx_ext"]
        master_doc = "index"
        html_theme = "basic"
        """,
    "index.rst": f"""
        Chapter
        =======

        .. exercise::
           :label: ex-one

           {QUESTION}

        .. solution:: ex-one
           :class: dropdown

           {ANSWER}

        .. solution:: ex-one

           A second answer, written without a dropdown class.
        """,
}


def build_tiny(tmp_path: Path, edition: str) -> BeautifulSoup:
    src, out = tmp_path / "src", tmp_path / f"html-{edition}"
    src.mkdir(exist_ok=True)
    for name, text in PROJECT.items():
        (src / name).write_text(textwrap.dedent(text), encoding="utf-8")
    env = {**os.environ, "BNLAB_EDITION": edition, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-E", "-b", "html", str(src), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return BeautifulSoup((out / "index.html").read_text(encoding="utf-8"), "html.parser")


def answer_blocks(soup: BeautifulSoup) -> list:
    return soup.select("div.solution")


def closed_toggle(block) -> bool:
    """The answer sits in a <details> without `open`, and nothing else hides it a second time."""
    details = block.find_parent("details")
    return (
        details is not None
        and not details.has_attr("open")
        and details.find("summary") is not None
        and "dropdown" not in block.get("class", [])
    )


# -- the logic -----------------------------------------------------------------------------------


def test_editions_and_what_each_shows(monkeypatch):
    assert sphinx_ext.EDITIONS == ("learner", "self-study", "instructor")
    assert [sphinx_ext.shows_answers(e) for e in sphinx_ext.EDITIONS] == [False, True, True]
    assert [sphinx_ext.collapses_answers(e) for e in sphinx_ext.EDITIONS] == [False, True, False]
    monkeypatch.delenv("BNLAB_EDITION", raising=False)
    assert sphinx_ext.edition() == "learner"
    for name in sphinx_ext.EDITIONS:
        monkeypatch.setenv("BNLAB_EDITION", name)
        assert sphinx_ext.edition() == name
    monkeypatch.setenv("BNLAB_EDITION", "selfstudy")
    with pytest.raises(ValueError, match="self-study"):
        sphinx_ext.edition()


def test_collapse_answers_wraps_each_solution_once():
    from docutils import nodes
    from sphinx_exercise.nodes import solution_node

    doc = nodes.section()
    first, second = solution_node(classes=["solution", "dropdown"]), solution_node(classes=["x"])
    first += nodes.paragraph(text=ANSWER)
    doc += [nodes.paragraph(text=QUESTION), first, second]
    assert sphinx_ext.collapse_answers(doc) == 2
    assert sphinx_ext.collapse_answers(doc) == 0  # idempotent
    toggles = list(doc.findall(sphinx_ext.answer_toggle))
    assert [t.children for t in toggles] == [[first], [second]]
    assert first["classes"] == ["solution"] and second["classes"] == ["x"]
    assert isinstance(doc.children[0], nodes.paragraph)  # the question is left alone


def test_each_edition_builds_into_its_own_folder(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(build, "run", lambda cmd, env=None: calls.append((cmd, env)))
    monkeypatch.setattr(build, "BUILD", tmp_path / "_build")
    monkeypatch.setattr(build, "REPO", REPO)
    assert build.output_folder("learner") == REPO
    assert build.output_folder("instructor") == build.BUILD / "instructor"
    assert build.output_folder("self-study") == build.BUILD / "self-study"
    with pytest.raises(ValueError):
        build.output_folder("teacher")
    html = build.build_book("self-study")
    assert html == tmp_path / "_build" / "self-study" / "_build" / "html"
    cmd, env = calls[-1]
    assert env == {"BNLAB_EDITION": "self-study"}
    assert cmd[cmd.index("--path-output") + 1] == str(tmp_path / "_build" / "self-study")
    private = tmp_path / "private"
    assert build.build_book("self-study", path_output=private) == private / "_build" / "html"


def test_the_cli_offers_the_three_editions(monkeypatch, tmp_path, capsys):
    from bnlab import cli

    asked = []
    monkeypatch.setattr(cli.build, "build_book", lambda e: asked.append(e) or tmp_path)
    for name in sphinx_ext.EDITIONS:
        cli.main(["book", "--edition", name])
    assert asked == list(sphinx_ext.EDITIONS)
    with pytest.raises(SystemExit):
        cli.main(["book", "--edition", "teacher"])
    capsys.readouterr()


# -- a real Sphinx build of a small chapter ------------------------------------------------------


def test_learner_edition_has_no_answers(tmp_path):
    soup = build_tiny(tmp_path, "learner")
    assert QUESTION in soup.get_text(" ")
    assert ANSWER not in soup.get_text(" ") and not answer_blocks(soup)


def test_self_study_edition_has_every_answer_behind_a_closed_toggle(tmp_path):
    soup = build_tiny(tmp_path, "self-study")
    blocks = answer_blocks(soup)
    assert len(blocks) == 2 and ANSWER in blocks[0].get_text(" ")
    assert all(closed_toggle(b) for b in blocks), [str(b)[:200] for b in blocks]
    assert sphinx_ext.ANSWER_SUMMARY in soup.find("summary").get_text()
    question = soup.find(string=lambda s: s and QUESTION in s)
    assert question is not None and question.find_parent("details") is None  # questions open


def test_instructor_edition_shows_the_answers_as_written(tmp_path):
    soup = build_tiny(tmp_path, "instructor")
    blocks = answer_blocks(soup)
    assert len(blocks) == 2 and ANSWER in blocks[0].get_text(" ")
    assert not soup.find_all("details")
    assert "dropdown" in blocks[0]["class"]  # as the chapter asked; sphinx-togglebutton's job


# -- the real book (slow: builds it, like tests/test_book.py) ------------------------------------


def test_self_study_book_collapses_every_answer_and_holds_no_solution(learner_book):
    from test_book import _code_lines, _words, chapter_answers, pages, solution_windows

    run_course("book", "--edition", "self-study")
    html = REPO / "_build" / "self-study" / "_build" / "html"
    text = _words(
        " ".join(BeautifulSoup(p.read_text(), "html.parser").get_text() for p in pages(html))
    )
    for answer in chapter_answers():
        assert answer in text, answer
    windows, blocks = solution_windows(), 0
    for page in pages(html):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for block in answer_blocks(soup):
            blocks += 1
            assert closed_toggle(block), f"{page.name}: an answer is not behind a closed toggle"
        code = "\n".join("\n".join(_code_lines(pre.get_text())) for pre in soup.find_all("pre"))
        leaked = [w for w in windows if w in code]
        assert not leaked, f"{page.name} shows an exercise's solution: {leaked[:2]}"
    assert blocks == len(chapter_answers())
