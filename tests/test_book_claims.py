"""Every number a chapter states as a result is computed by the chapter; code cells fit the page.

The intro promises: "Every number and figure in it is produced by code that runs when the book is
built; nothing is pasted in." These tests hold the chapters (book/NN_*.md) to it without building
the book:

* A number in the prose that looks like a measured result (a decimal such as 0.56, a multiplier
  such as 58x or 4.5×, a percentage, "300 steps", scientific notation such as 7.7e-2) must come
  from a `{glue:...}` role, or be one of a short list of definitions below, each with its reason.
  Prose is what a reader reads as text: code cells, math, code spans, roles (glue, cite, eq,
  ref, ...), link targets, labels and directive option lines are not prose.
* Every `{glue:...}` name used in a chapter is defined by a `glue("name", ...)` call in that
  chapter's code.
* No line of a code cell is longer than 90 characters (the width the book's theme shows without
  a scroll bar).
* The book's title and the intro promise no GPU (CUDA) content until a chapter has it.

Besides glue, a number is supported when it is a setting the chapter's code sets (a literal of
a code cell: "3000 steps", "learning rate 0.05", "90% test accuracy" for a target of 0.9), a
premise of an exercise (and its solution restating it), a definition in DEFINITIONS, a
software version, a reference to a chapter, figure or equation, or a paper's number in a
sentence with its {cite} (a table: the paragraph introducing it).
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO

CHAPTERS = sorted((REPO / "book").glob("[0-9][0-9]_*.md"))
MAX_CODE_WIDTH = 90

# Fenced blocks whose whole body is not prose: executed code, maths, literal code.
NOT_PROSE_DIRECTIVES = {"code-cell", "math", "code", "code-block", "raw", "eval-rst", "glue:math"}


@dataclass
class Chapter:
    path: Path
    text: str  # the file
    prose: str  # same length and line breaks as text; everything that is not prose blanked
    code: list[tuple[int, str]]  # (line number, line) of every code-cell body line
    # (directive, argument or :label:, first line, last line) of every exercise and solution
    questions: list[tuple[str, str, int, int]] = field(default_factory=list)


def _blank(s: str) -> str:
    return re.sub(r"[^\n]", " ", s)


def _fence(line: str) -> tuple[str, str] | None:
    """(marker, info) if the line opens or closes a fence (``` or :::, any length)."""
    m = re.match(r"^\s*(`{3,}|:{3,})(.*)$", line)
    return (m.group(1), m.group(2).strip()) if m else None


def parse(path: Path) -> Chapter:
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    keep = [True] * len(lines)
    code: list[tuple[int, str]] = []
    i = 0
    if lines and lines[0].strip() == "---":  # front matter
        keep[0] = False
        i = 1
        while i < len(lines) and lines[i].strip() != "---":
            keep[i] = False
            i += 1
        if i < len(lines):
            keep[i] = False
        i += 1
    stack: list[tuple[str, bool, bool]] = []  # (marker, prose body?, is code cell)
    open_questions: list[list] = []  # [directive, label, first line, depth] being read
    questions: list[tuple[str, str, int, int]] = []
    in_options = False
    while i < len(lines):
        line = lines[i]
        f = _fence(line)
        if f and stack and f[0] == stack[-1][0] and not f[1]:
            stack.pop()
            if open_questions and open_questions[-1][3] == len(stack):
                name, label, first, _ = open_questions.pop()
                questions.append((name, label, first, i + 1))
            keep[i] = False
            in_options = False
        elif f and f[1] and (not stack or stack[-1][1]):
            m = re.match(r"\{([\w:-]+)\}", f[1])
            name = m.group(1) if m else None
            prose_body = name is not None and name not in NOT_PROSE_DIRECTIVES
            if name in ("exercise", "solution"):
                arg = f[1][m.end() :].strip()
                open_questions.append([name, arg, i + 1, len(stack)])
            stack.append((f[0], prose_body, name == "code-cell"))
            keep[i] = False
            in_options = True
            if i + 1 < len(lines) and lines[i + 1].strip() == "---":  # YAML option block
                i += 1
                keep[i] = False
                while i + 1 < len(lines) and lines[i + 1].strip() != "---":
                    i += 1
                    keep[i] = False
                i += 1
                keep[i] = False
        else:
            if stack and in_options and re.match(r"^\s*:[\w-]+:", line):
                keep[i] = False  # `:label:`, `:class:`, `:tags:`, ...
                label = re.match(r"^\s*:label:\s*(\S+)", line)
                if label and open_questions and open_questions[-1][3] == len(stack) - 1:
                    open_questions[-1][1] = label.group(1)
            else:
                in_options = False
                if stack and not stack[-1][1]:
                    keep[i] = False
                    if stack[-1][2]:
                        code.append((i + 1, line))
        i += 1
    prose = "\n".join(ln if k else _blank(ln) for ln, k in zip(lines, keep, strict=True))

    inline = [
        r"<!--.*?-->",  # comments
        r"\$\$.*?\$\$",  # display maths
        r"(?<![\\\w])\$[^$\n]+?\$",  # inline maths
        r"\\\(.*?\\\)",
        r"\{[\w:.-]+\}`[^`]*`",  # roles: glue, cite, eq, ref, numref, doc, notebook, ...
        r"``.+?``",
        r"`[^`\n]+`",  # code spans
        r"\]\([^)\s]*\)",  # link targets
        r"^\([\w-]+\)=\s*$",  # labels
        r"https?://\S+",
    ]
    for pattern in inline:
        prose = re.sub(pattern, lambda m: _blank(m.group(0)), prose, flags=re.S | re.M)
    return Chapter(path, text, prose, code, questions)


# -- what looks like a measured result -----------------------------------------------------------

NUM = r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?"
RESULT_PATTERNS = {
    "scientific": rf"{NUM}[eE][-+]?\d+\b",
    "percentage": rf"{NUM}\s*(?:%|percent\b|per cent\b)",
    "multiplier": rf"{NUM}\s*[x×](?![\w×])|{NUM}\s+times\s+(?:smaller|larger|bigger|faster|slower"
    r"|more|less|fewer|higher|lower|as)\b"
    rf"|\bfactor\s+of\s+(?:about\s+|roughly\s+|nearly\s+|~\s*)?{NUM}|{NUM}-fold\b",
    "steps": rf"{NUM}\s+(?:training\s+)?(?:steps|epochs|iterations|updates)\b",
    "decimal": r"(?<![\w.])\d*\.\d+(?!\w|\.\d)",
}
RESULT = re.compile("|".join(f"(?P<{k}>{v})" for k, v in RESULT_PATTERNS.items()))

# A number is allowed when it is one of these values and the word that defines it stands in the
# same sentence, at most 60 characters away. Each says why; keep this list short: it is for
# definitions, never for results.
DEFINITIONS = [
    (
        {1e-5, 1e-3},
        r"\b(?:eps|epsilon)\b|ε",
        "a framework's default epsilon (PyTorch 1e-5, Keras 1e-3)",
    ),
    (
        {0.1, 0.01, 0.9, 0.99},
        r"\bmomentum\b",
        "a momentum convention (PyTorch's default 0.1, Keras's 0.99, and their conversions)",
    ),
]
VERSION = re.compile(
    r"\b(?:Python|PyTorch|torch|TensorFlow|Keras|NumPy|Sphinx|Jupyter Book|version|v)\s*$", re.I
)
# A number reported by a cited paper, in the same sentence as its {cite} role.
CITED = r"\{cite(?::\w+)?\}`"
# A number right after one of these words is a reference to a part of the book or of a paper.
REFERENCE_WORDS = re.compile(
    r"(?:chapters?|sections?|§|figures?|fig\.|tables?|equations?|eq\.|exercises?|part|"
    r"appendix)\s*$",
    re.I,
)


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence (in the unmasked text) around [start, end)."""
    para_start = text.rfind("\n\n", 0, start) + 2 if text.rfind("\n\n", 0, start) >= 0 else 0
    para_end = text.find("\n\n", end)
    para_end = len(text) if para_end < 0 else para_end
    boundary = re.compile(r"[.!?]\s+(?=[A-Z{`$(*])")
    s = para_start
    for m in boundary.finditer(text, para_start, start):
        s = m.end()
    m = boundary.search(text, end, para_end)
    return text[s : m.start() + 1 if m else para_end]


def _table_context(text: str, start: int) -> str:
    """For a number in a table row: the table and the paragraph just before it."""
    line_start = text.rfind("\n", 0, start) + 1
    if not text[line_start:].lstrip().startswith("|"):
        return ""
    lines = text[:line_start].split("\n")[:-1]
    while lines and lines[-1].lstrip().startswith("|"):
        lines.pop()
    while lines and not lines[-1].strip():
        lines.pop()
    before = []
    while lines and lines[-1].strip():
        before.insert(0, lines.pop())
    return "\n".join(before)


def _allowed(text: str, start: int, end: int) -> bool:
    """A definition whose own match covers the number, or a sentence that cites a paper (a
    table: the paragraph that introduces it)."""
    if re.search(CITED, _sentence(text, start, end) + _table_context(text, start)):
        return True
    before = re.split(r"\.(?!\d)", text[max(0, start - 60) : start])[-1]
    after = re.split(r"\.(?!\d)", text[end : end + 60])[0]
    if VERSION.search(before):
        return True  # a software version, not a number of the course
    value = _value("decimal", text[start:end])
    return any(
        value in values and (re.search(word, before, re.I) or re.search(word, after, re.I))
        for values, word, _ in DEFINITIONS
    )


STYLE_KWARGS = {
    "alpha", "lw", "linewidth", "linewidths", "ms", "markersize", "fontsize", "s", "size",
    "dpi", "zorder", "pad", "wspace", "hspace", "width", "height", "rotation", "bins",
}  # fmt: skip


def code_literals(chapter: Chapter) -> set[float]:
    """The numeric literals of the chapter's code cells (comments and strings excluded)."""
    values: set[float] = set()
    cells, current = [], []
    last = None
    for line_no, line in chapter.code:
        if last is not None and line_no != last + 1:
            cells.append(current)
            current = []
        current.append(line)
        last = line_no
    cells.append(current)
    for cell in cells:
        src = "\n".join(ln for ln in cell if not ln.lstrip().startswith(("%", "!")))
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(src + "\n").readline))
        except (tokenize.TokenError, SyntaxError, IndentationError):
            continue
        for k, tok in enumerate(tokens):
            if tok.type != tokenize.NUMBER:
                continue
            if k >= 2 and tokens[k - 1].string == "=" and tokens[k - 2].string in STYLE_KWARGS:
                continue  # plot styling (alpha=0.25) sets nothing the prose describes
            try:
                values.add(float(tok.string.replace("_", "").rstrip("jJ")))
            except ValueError:
                pass
    return values


def _value(kind: str, number: str) -> float | None:
    m = re.search(r"\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+", number)
    if not m:
        return None
    value = float(m.group(0).replace(",", ""))
    return value / 100 if kind == "percentage" else value


# A setting restated in prose (a learning rate, a number of steps, an accuracy threshold) is
# supported when the chapter's code sets that value: it is a literal of a code cell, so the prose
# breaks as soon as the code changes it. Multipliers compare two results and are never settings.
SETTING_KINDS = {"decimal", "scientific", "steps", "percentage"}


def _question_at(chapter: Chapter, line: int) -> tuple[str, str] | None:
    for name, label, first, last in chapter.questions:
        if first <= line <= last:
            return name, label
    return None


def givens(chapter: Chapter) -> dict[str, set[float]]:
    """The numbers each exercise poses, by label: the premises of a question ("two placements
    score 0.984 and 0.988"), which are not results the book claims. Its solution may restate
    them; any other number in a solution is a claim like any other."""
    lines = chapter.prose.split("\n")
    found: dict[str, set[float]] = {}
    for name, label, first, last in chapter.questions:
        if name == "exercise":
            body = "\n".join(lines[first - 1 : last])
            found[label] = {_value(m.lastgroup, m.group(0)) for m in RESULT.finditer(body)}
    return found


def claims(chapter: Chapter) -> list[tuple[int, str, str, str]]:
    """(line, kind, number, line text) of every result-like number not computed by the chapter."""
    found = []
    settings = code_literals(chapter)
    posed = givens(chapter)
    for m in RESULT.finditer(chapter.prose):
        kind = m.lastgroup
        start, end = m.span()
        value = _value(kind, m.group(0))
        if kind in SETTING_KINDS and value in settings:
            continue
        question = _question_at(chapter, chapter.text.count("\n", 0, start) + 1)
        if question and question[0] == "exercise":
            continue  # the premise of a question
        if question and value in posed.get(question[1], ()):
            continue  # a solution restating its question's premise
        before = chapter.prose[max(0, start - 20) : start]
        if REFERENCE_WORDS.search(before):
            continue
        if _allowed(chapter.text, start, end):
            continue
        line_no = chapter.text.count("\n", 0, start) + 1
        line = chapter.text.split("\n")[line_no - 1].strip()
        found.append((line_no, kind, m.group(0), line))
    return found


# -- glue ----------------------------------------------------------------------------------------

GLUE_USE = re.compile(
    r"\{glue(?::\w*)?\}`([^`:]+)(?::[^`]*)?`|^\s*`{3,}\{glue(?::\w+)?\}\s+(\S+)", re.M
)
GLUE_DEF = re.compile(r"""\bglue\(\s*(f?)(["'])(.+?)\2""")


def glue_names(chapter: Chapter) -> tuple[set[str], list[re.Pattern]]:
    """Names glued by the chapter's code: literal names, and f-string names as patterns."""
    code = "\n".join(line for _, line in chapter.code)
    names, patterns = set(), []
    for f, _, name in GLUE_DEF.findall(code):
        if f and "{" in name:
            parts = re.split(r"\{[^}]*\}", name)
            patterns.append(re.compile("[^`]+".join(map(re.escape, parts)) + "$"))
        else:
            names.add(name)
    return names, patterns


def glue_uses(chapter: Chapter) -> list[tuple[int, str]]:
    uses = []
    for m in GLUE_USE.finditer(chapter.text):
        line = chapter.text.count("\n", 0, m.start()) + 1
        uses.append((line, (m.group(1) or m.group(2)).strip()))
    return uses


# -- the tests -----------------------------------------------------------------------------------


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_the_parser_tells_prose_from_the_rest():
    text = "\n".join(
        [
            "---",
            "jupytext: {a: 0.5}",
            "---",
            "# A title",
            "",
            "Pasted: 0.56 and 58x and 93% after 300 steps, 7.7e-2.",
            "Computed: {glue:text}`acc:.2f` and $0.25 \\times 4$ and `eps=0.001`.",
            "",
            "```{code-cell} ipython3",
            ":tags: [remove-cell]",
            "glue('acc', 0.91)",
            "print(0.123)",
            "```",
            "",
            "```{solution} ex-a",
            ":class: dropdown",
            "",
            "About 3.5 times smaller, a factor of about 3 or a 2-fold gain; given 0.75, 0.5.",
            "```",
            "",
            "PyTorch's default eps is 1e-5 and its momentum 0.1.",
            "```{exercise}",
            ":label: ex-a",
            "",
            "Two runs score 0.75 and 0.8.",
            "```",
            "Ioffe and Szegedy reach 4.9% top-5 error {cite}`ioffe2015batch`.",
            "See chapter 3.2 and figure 1.5.",
        ]
    )
    path = REPO / "tests" / "_sample_chapter.md"
    try:
        path.write_text(text, encoding="utf-8")
        chapter = parse(path)
    finally:
        path.unlink()
    got = [(line, kind, number) for line, kind, number, _ in claims(chapter)]
    assert got == [
        (6, "decimal", "0.56"),
        (6, "multiplier", "58x"),
        (6, "percentage", "93%"),
        (6, "steps", "300 steps"),
        (6, "scientific", "7.7e-2"),
        (18, "multiplier", "3.5 times smaller"),
        (18, "multiplier", "factor of about 3"),
        (18, "multiplier", "2-fold"),
        (18, "decimal", "0.5"),
    ], got
    assert chapter.code == [(11, "glue('acc', 0.91)"), (12, "print(0.123)")]
    assert glue_uses(chapter) == [(7, "acc")] and glue_names(chapter)[0] == {"acc"}


def test_chapters_exist():
    assert len(CHAPTERS) >= 8


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_result_in_the_prose_is_computed(path):
    found = claims(parse(path))
    assert not found, (
        "numbers stated in prose but not computed (use a {glue:text} role):\n"
        + "\n".join(
            f"{_rel(path)}:{line}: [{kind}] {num!r} in: {text}" for line, kind, num, text in found
        )
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_glued_name_is_defined_in_its_chapter(path):
    chapter = parse(path)
    names, patterns = glue_names(chapter)
    missing = [
        f"{_rel(path)}:{line}: {{glue}}`{name}` is glued nowhere in this chapter"
        for line, name in glue_uses(chapter)
        if name not in names and not any(p.match(name) for p in patterns)
    ]
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_code_cell_lines_fit_the_page(path):
    chapter = parse(path)
    assert chapter.code or "code-cell" not in chapter.text
    long = [
        f"{_rel(path)}:{line}: {len(text)} characters"
        for line, text in chapter.code
        if len(text) > MAX_CODE_WIDTH
    ]
    assert not long, f"code lines over {MAX_CODE_WIDTH} characters:\n" + "\n".join(long)


def test_no_title_promises_a_gpu_chapter_that_does_not_exist():
    """The book's title and the intro may name CUDA/GPUs only once a chapter is about them."""
    import yaml

    gpu = re.compile(r"\b(?:CUDA|GPUs?|cuDNN|Triton)\b", re.I)
    titles = {
        p.name: next((ln[2:] for ln in parse(p).prose.split("\n") if ln.startswith("# ")), "")
        for p in CHAPTERS
    }
    if any(gpu.search(t) for t in titles.values()):
        return
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    intro = parse(REPO / "book" / "intro.md").prose
    promises = [("_config.yml title", config["title"])]
    promises += [("book/intro.md", ln) for ln in intro.split("\n") if ln.startswith("#")]
    bad = [f"{where}: {text}" for where, text in promises if gpu.search(text)]
    assert not bad, "no chapter is about GPUs yet:\n" + "\n".join(bad)
