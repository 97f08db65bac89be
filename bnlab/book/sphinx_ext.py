"""Sphinx extension of the course book.

* Serves MathJax 3 from the build itself: it copies the ES5 bundle shipped by the PyPI package
  ``django-static-mathjax`` into ``_static/mathjax`` (``mathjax_path`` in _config.yml points
  there), so that math renders offline and no page requests a CDN.
* Chooses the edition (``BNLAB_EDITION``): ``learner`` (default) removes the answers of the
  chapter questions from the HTML; ``self-study`` keeps them, each collapsed in a closed
  ``<details>`` element the reader must open (no JavaScript needed); ``instructor`` shows them
  as written. No edition contains an exercise notebook's solution: those live in solutions/,
  which the book never reads, and only the learner notebooks are copied into the build.
* The role ``{notebook}`STEM``` links a chapter to its exercise: the learner notebook itself
  (copied into the build, so it downloads offline) and launch links (Colab, Binder) that open
  ``notebooks/STEM.ipynb`` of the repository named once in _config.yml. Launch links never
  point at a chapter's source or at solutions/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from docutils import nodes

# Only what tex-chtml.js loads: the speech engine, SVG/MathML variants and node entry are not.
_MATHJAX_SKIP = ("sre", "*-full*", "*-svg*", "mml-*", "tex-mml-*", "node-main.js", "latest.js")


def mathjax_source() -> Path:
    import mathjax  # the django-static-mathjax distribution

    src = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5"
    if not (src / "tex-chtml.js").is_file():
        raise RuntimeError(f"MathJax bundle not found at {src}; reinstall django-static-mathjax")
    return src


EDITIONS = ("learner", "self-study", "instructor")
ANSWER_SUMMARY = "Check your answer (click to show)"


def edition() -> str:
    value = os.environ.get("BNLAB_EDITION", "learner")
    if value not in EDITIONS:
        choices = ", ".join(repr(e) for e in EDITIONS)
        raise ValueError(f"BNLAB_EDITION={value!r}: use one of {choices}")
    return value


def shows_answers(name: str) -> bool:
    """Whether the answers to the chapter questions are in the pages at all."""
    return name != "learner"


def collapses_answers(name: str) -> bool:
    """Whether each answer sits in a closed toggle the reader must open."""
    return name == "self-study"


class answer_toggle(nodes.General, nodes.Element):
    """A closed ``<details>`` around one answer (self-study edition)."""


def _visit_answer_toggle(self, node) -> None:
    self.body.append('<details class="toggle-details bnlab-answer">\n')
    self.body.append('<summary class="toggle-details__summary">')
    self.body.append(f'<span class="toggle-details__summary-text">{self.encode(node["summary"])}')
    self.body.append("</span></summary>\n")


def _depart_answer_toggle(self, node) -> None:
    self.body.append("</details>\n")


def collapse_answers(doctree) -> int:
    """Wrap every answer (sphinx-exercise's solution node) in a closed toggle; return the count.

    The answer's own "dropdown" class goes: sphinx-togglebutton would otherwise hide it a second
    time inside the toggle, behind a second click.
    """
    from sphinx_exercise.nodes import solution_node

    count = 0
    for node in list(doctree.findall(solution_node)):
        if isinstance(node.parent, answer_toggle):
            continue
        node["classes"] = [c for c in node["classes"] if c != "dropdown"]
        toggle = answer_toggle(summary=ANSWER_SUMMARY)
        node.replace_self(toggle)
        toggle += node
        count += 1
    return count


def _doctree_resolved(app, doctree, docname) -> None:
    if app.builder.format == "html" and collapses_answers(edition()):
        collapse_answers(doctree)


REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO_ROOT / "notebooks"


def _repository(config) -> tuple[str, str]:
    options = config.html_theme_options or {}
    url = str(options.get("repository_url", "")).rstrip("/")
    return url, str(options.get("repository_branch", "main") or "main")


def notebook_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """{notebook}`02_forward_pass`: download link + launch links for a learner notebook."""
    stem = text.strip()
    path = NOTEBOOKS / f"{stem}.ipynb"
    if not path.is_file():
        msg = inliner.reporter.error(f"no learner notebook notebooks/{stem}.ipynb", line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    env = inliner.document.settings.env
    up = "../" * env.docname.count("/")
    url, branch = _repository(env.config)
    out = [
        nodes.reference(
            "",
            "",
            nodes.literal(text=f"notebooks/{stem}.ipynb"),
            refuri=f"{up}_notebooks/{stem}.ipynb",
        )
    ]
    if url.startswith("https://github.com/"):
        slug = url.removeprefix("https://github.com/")
        launches = {
            "Colab": f"https://colab.research.google.com/github/{slug}/blob/{branch}/"
            f"notebooks/{stem}.ipynb",
            "Binder": f"https://mybinder.org/v2/gh/{slug}/{branch}?labpath=notebooks/{stem}.ipynb",
        }
        out.append(nodes.Text(" ("))
        for i, (label, href) in enumerate(launches.items()):
            if i:
                out.append(nodes.Text(", "))
            out.append(nodes.reference("", label, refuri=href, classes=["launch-notebook"]))
        out.append(nodes.Text(")"))
    return out, []


def _copy_notebooks(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    dest = Path(app.outdir) / "_notebooks"
    dest.mkdir(parents=True, exist_ok=True)
    for path in NOTEBOOKS.glob("*.ipynb"):
        shutil.copyfile(path, dest / path.name)


def _config_inited(app, config) -> None:
    config.hide_solutions = not shows_answers(edition())
    mathjax_source()  # fail early, before the slow part of the build


def _copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    dest = Path(app.outdir) / "_static" / "mathjax"
    shutil.copytree(
        mathjax_source(), dest, ignore=shutil.ignore_patterns(*_MATHJAX_SKIP), dirs_exist_ok=True
    )


def setup(app):
    app.connect("config-inited", _config_inited)
    app.connect("doctree-resolved", _doctree_resolved)
    toggle = (_visit_answer_toggle, _depart_answer_toggle)
    app.add_node(answer_toggle, html=toggle, dirhtml=toggle, singlehtml=toggle, epub=toggle)
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _copy_notebooks)
    app.add_role("notebook", notebook_role)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
