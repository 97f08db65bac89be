"""Learner notebooks cite the book as it is: chapter numbers, titles and tolerances that exist.

The exercises refer to the book in prose ("Read the chapter *The backward pass* first",
"chapter 3", "exercise 2", "§3.2"). Every such reference, in the learner notebooks and in the
sources they are generated from (solutions/*.py), must name a chapter the book has: the titles
are the first `# ` heading of each book/NN_*.md, the numbers come from the order in _toc.yml. A
tolerance a notebook quotes (the gradient check's relative error) must be the book's number and
hold for what bnlab's own helpers give on a correct answer; the framework defaults a notebook
states (eps, momentum) must be the ones the checks' reference layers use.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO

BOOK = REPO / "book"


# -- the book: chapters, numbers, titles, sections -----------------------------------------------


def _prose_lines(path: Path) -> list[str]:
    """A chapter's lines with front matter and fenced blocks (code cells, math) blanked."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, fence, front = [], None, bool(lines and lines[0].strip() == "---")
    for i, line in enumerate(lines):
        if front:
            out.append("")
            if i > 0 and line.strip() == "---":
                front = False
            continue
        m = re.match(r"^(`{3,}|:{3,})", line.strip())
        if fence is None and m:
            fence = m.group(1)
            out.append("")
            continue
        if fence is not None:
            if line.strip() == fence:
                fence = None
            out.append("")
            continue
        out.append(line)
    return out


def chapters() -> dict[int | None, dict]:
    """{number: {"stem", "title", "sections"}} in _toc.yml order; unnumbered parts under None."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf-8"))
    found, number = {}, 0
    for part in toc.get("parts", []):
        for entry in part.get("chapters", []):
            path = REPO / f"{entry['file']}.md"
            if not re.match(r"\d\d_", path.name):
                continue
            lines = _prose_lines(path)
            titles = [ln[2:].strip() for ln in lines if ln.startswith("# ")]
            sections = [ln[3:].strip() for ln in lines if ln.startswith("## ")]
            # Jupyter Book numbers the chapters of numbered parts continuously
            # (use_multitoc_numbering, on by default and not turned off in _config.yml).
            key = None
            if part.get("numbered"):
                number += 1
                key = number
            found[key if key is not None else path.stem] = {
                "stem": path.stem,
                "title": titles[0] if titles else None,
                "sections": sections,
            }
    return found


def _norm(title: str) -> str:
    return " ".join(title.replace("*", "").replace("_", " ").split()).strip(" .:").casefold()


# -- the notebooks' prose ----------------------------------------------------------------------


def _py_cells(path: Path) -> list[str]:
    """Cells of a jupytext percent file, markdown comment markers removed."""
    cells, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            cells.append("\n".join(current))
            current = []
            continue
        current.append(re.sub(r"^# ?", "", line) if line.startswith("#") else line)
    cells.append("\n".join(current))
    return cells


def _ipynb_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb["cells"]
    ]


def sources() -> list[tuple[str, list[str]]]:
    found = [
        (f"notebooks/{p.name}", _ipynb_cells(p))
        for p in sorted((REPO / "notebooks").glob("*.ipynb"))
    ]
    found += [
        (f"solutions/{p.name}", _py_cells(p)) for p in sorted((REPO / "solutions").glob("*.py"))
    ]
    return found


QUOTE = r"(?:\*{1,2}|_|\"|“|'|‘)"
TITLED = re.compile(
    r"\bchapters?\s+(?:\d+\s*,?\s*)?(?:\()?(" + QUOTE + r")(.+?)(?:\1|”|’)", re.I | re.S
)
NUMBERED = re.compile(r"\bchapters?\s+(\d+)\b|\bch\.\s*(\d+)\b|§\s*(\d+)(?:\.(\d+))?", re.I)
EXERCISE = re.compile(r"\bexercises?\s+(\d+)\b", re.I)
BOOK_PATH = re.compile(r"\bbook/([\w.-]+?)(?:\.md|\.html)\b")


def references() -> list[tuple[str, str, str]]:
    """(where, kind, value) for every reference to the book found in a learner notebook."""
    found = []
    for name, cells in sources():
        for i, cell in enumerate(cells):
            text = " ".join(cell.split())
            where = f"{name} cell {i}"
            for m in TITLED.finditer(text):
                found.append((where, "title", m.group(2)))
            for m in NUMBERED.finditer(text):
                number = m.group(1) or m.group(2) or m.group(3)
                found.append((where, "number", number))
                if m.group(4):
                    found.append((where, "section", f"{m.group(3)}.{m.group(4)}"))
            for m in EXERCISE.finditer(text):
                found.append((where, "exercise", m.group(1)))
            for m in BOOK_PATH.finditer(text):
                found.append((where, "path", m.group(1)))
    return found


def test_the_book_has_titled_numbered_chapters():
    book = chapters()
    numbered = [k for k in book if isinstance(k, int)]
    assert numbered == list(range(1, len(numbered) + 1)) and len(numbered) >= 8
    assert all(c["title"] for c in book.values()), book


def test_the_reference_finder_sees_how_the_notebooks_cite_the_book():
    kinds = {kind for _, kind, _ in references()}
    assert {"title", "number"} <= kinds  # the notebooks do cite the book; the parser sees it
    sample = "Read the chapter *The\nforward pass* first (chapter 2, §2.3; exercise 2)."
    text = " ".join(sample.split())
    assert [m.group(2) for m in TITLED.finditer(text)] == ["The forward pass"]
    assert [m.groups() for m in NUMBERED.finditer(text)] == [
        ("2", None, None, None),
        (None, None, "2", "3"),
    ]


def test_every_chapter_a_notebook_names_exists():
    book = chapters()
    titles = {_norm(c["title"]): n for n, c in book.items()}
    stems = {c["stem"] for c in book.values()}
    exercises = [*(REPO / "notebooks").glob("*.ipynb"), *(REPO / "solutions").glob("*.py")]
    notebooks = {p.stem[:2] for p in exercises}
    bad = []
    for where, kind, value in references():
        if kind == "title" and _norm(value) not in titles:
            bad.append(f"{where}: chapter *{value}* is not a title of the book")
        elif kind == "number" and int(value) not in book:
            bad.append(f"{where}: chapter {value} does not exist")
        elif kind == "section":
            chapter, section = map(int, value.split("."))
            if chapter not in book or not 1 <= section <= len(book[chapter]["sections"]):
                bad.append(f"{where}: §{value} does not exist")
        elif kind == "exercise" and f"{int(value):02d}" not in notebooks:
            bad.append(f"{where}: there is no exercise {value} in solutions/")
        elif kind == "path" and value not in stems:
            bad.append(f"{where}: book/{value} is not a chapter")
    valid = {n: c["title"] for n, c in book.items()}
    assert not bad, "\n".join(bad) + f"\nthe book's chapters: {valid}"


def test_a_number_and_a_title_cited_together_agree():
    """A number and a title cited together agree: "chapter 3 (*The backward pass*)"."""
    book = chapters()
    titles = {_norm(c["title"]): n for n, c in book.items()}
    pair = re.compile(r"\bchapter\s+(\d+)\s*,?\s*\(?(" + QUOTE + r")(.+?)(?:\2|”|’)", re.I)
    bad = []
    for name, cells in sources():
        for i, cell in enumerate(cells):
            for m in pair.finditer(" ".join(cell.split())):
                number, title = int(m.group(1)), _norm(m.group(3))
                if title in titles and titles[title] != number:
                    bad.append(f"{name} cell {i}: chapter {number} is not *{m.group(3)}*")
    assert not bad, "\n".join(bad)


# -- tolerances ----------------------------------------------------------------------------------

# "relative error(s) should be about 1e-7 or smaller", "relative error around $10^{-7}$"
_EXP = r"(?:(\d(?:\.\d+)?)?\s*(?:e|E|×\s*10\^|\\times\s*10\^|10\^)\{?(-\d+)\}?)"
REL_ERROR = re.compile(r"relative errors?\b[^.]{0,80}?" + _EXP, re.I | re.S)


def _value(mantissa: str | None, exponent: str) -> float:
    return float(mantissa or 1) * 10.0 ** int(exponent)


def book_gradcheck_tolerance() -> float:
    text = "\n".join(_prose_lines(BOOK / "03_backward_pass.md"))
    text = " ".join(text.split()).replace("$", "")
    values = {_value(*m.groups()) for m in REL_ERROR.finditer(text)}
    assert len(values) == 1, f"chapter 3 should state one gradient-check tolerance, found {values}"
    return values.pop()


def notebook_gradcheck_tolerances() -> list[tuple[str, float]]:
    found = []
    for name, cells in sources():
        for i, cell in enumerate(cells):
            for m in REL_ERROR.finditer(" ".join(cell.split())):
                found.append((f"{name} cell {i}", _value(*m.groups())))
    return found


def test_notebooks_quote_the_books_gradient_check_tolerance():
    book = book_gradcheck_tolerance()
    quoted = notebook_gradcheck_tolerances()
    assert any(n.startswith("notebooks/03") for n, _ in quoted), "notebook 03 states no tolerance"
    bad = [f"{where}: {v:g}" for where, v in quoted if v != book]
    assert not bad, f"chapter 3 says {book:g}; the notebooks say:\n" + "\n".join(bad)


def test_bnlab_gradcheck_docstring_quotes_the_books_tolerance():
    """`rel_error?` in a notebook shows this docstring: it must not contradict the book."""
    from bnlab.checks import gradcheck

    book = book_gradcheck_tolerance()
    doc = " ".join(inspect.getdoc(gradcheck.rel_error).split())
    said = [_value(m.group(1), m.group(2)) for m in re.finditer(r"about\s+" + _EXP, doc)]
    assert said == [book], f"bnlab/checks/gradcheck.py rel_error says {said}, chapter 3 {book:g}"


def test_a_correct_gradient_passes_the_quoted_tolerance_with_bnlabs_helpers():
    """The tolerance is honest: bnlab's numerical_gradient and rel_error meet it on a correct
    backward pass, over the notebook's own shapes and a few more seeds."""
    import numpy as np

    from bnlab.checks.gradcheck import numerical_gradient, rel_error

    def forward(x, gamma, beta, eps=1e-5):
        mu, var = x.mean(0), x.var(0)
        return gamma * (x - mu) / np.sqrt(var + eps) + beta

    def backward(dout, x, gamma, eps=1e-5):
        xhat = (x - x.mean(0)) / np.sqrt(x.var(0) + eps)
        n = x.shape[0]
        dxhat = dout * gamma
        dx = (n * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0)) / (
            n * np.sqrt(x.var(0) + eps)
        )
        return dx, (dout * xhat).sum(0), dout.sum(0)

    tol = book_gradcheck_tolerance()
    worst = 0.0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x = rng.normal(2.0, 3.0, size=(6, 4))
        gamma, beta, dout = rng.normal(size=4), rng.normal(size=4), rng.normal(size=(6, 4))
        dx, dgamma, dbeta = backward(dout, x, gamma)
        worst = max(
            worst,
            rel_error(
                dx, numerical_gradient(lambda v, g=gamma, b=beta: forward(v, g, b), x, dout)
            ),
            rel_error(
                dgamma, numerical_gradient(lambda v, x=x, b=beta: forward(x, v, b), gamma, dout)
            ),
            rel_error(
                dbeta, numerical_gradient(lambda v, x=x, g=gamma: forward(x, g, v), beta, dout)
            ),
        )
    assert worst < tol, f"a correct gradient gives {worst:.1e}, above the quoted {tol:g}"


# eps=1e-5, "epsilon defaults to 1e-3", "momentum of 0.1"; not a tuple assignment
# (`c_in, c_out, eps = 4, 6, 1e-5`), whose first value is not eps's.
DEFAULTS = re.compile(
    r"(?<!,)(?<!,\s)\b(eps|epsilon|momentum)\s*(?:=|defaults to|of)\s*(\d+(?:\.\d+)?(?:e-?\d+)?)\b"
)


def reference_defaults() -> dict[str, set[float]]:
    """The eps/epsilon and momentum the checks' reference layers are built with."""
    from bnlab.checks import references

    src = inspect.getsource(references)
    torch_eps = inspect.signature(references.torch_batchnorm_train).parameters["eps"].default
    keras_eps = inspect.signature(references.keras_batchnorm_train).parameters["eps"].default
    torch_m = {float(v) for v in re.findall(r"BatchNorm1d\([^\n]*?momentum=([\d.]+)", src)}
    keras_m = {float(v) for v in re.findall(r"BatchNormalization\([^)]*?momentum=([\d.]+)", src)}
    return {
        "eps": {torch_eps},
        "epsilon": {keras_eps},
        "momentum": torch_m,
        "keras_momentum": keras_m,
    }


def test_framework_defaults_in_the_notebooks_are_the_checks_defaults():
    """eps/momentum a notebook states (prose, signatures) are the reference layers' values.

    An optimizer's momentum (`SGD(0.05, momentum=0.9)`) is not BN's and is skipped.
    """
    want = reference_defaults()
    assert want["eps"] == {1e-5} and want["epsilon"] == {1e-3}, want
    assert want["momentum"] == {0.1} and want["keras_momentum"] == {0.99}, want
    bad = []
    for name, cells in sources():
        keras = "keras" in name
        for i, cell in enumerate(cells):
            for line in cell.splitlines():
                if "optim" in line or "SGD" in line:
                    continue
                for m in DEFAULTS.finditer(line):
                    key, value = m.group(1), float(m.group(2))
                    if keras:
                        key = {"eps": "epsilon", "momentum": "keras_momentum"}.get(key, key)
                    if value not in want[key]:
                        bad.append(f"{name} cell {i}: {m.group(0)} (the checks: {want[key]})")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("stem", ["02_forward_pass", "03_backward_pass", "04_train_vs_inference"])
def test_numpy_notebooks_name_their_chapter_by_its_title(stem):
    """The first cell of each NumPy exercise names its chapter exactly as the book titles it."""
    title = next(c["title"] for c in chapters().values() if c["stem"] == stem)
    first = " ".join(_ipynb_cells(REPO / "notebooks" / f"{stem}.ipynb")[0].split())
    assert f"*{title}*" in first, f"notebooks/{stem}.ipynb should name the chapter *{title}*"
