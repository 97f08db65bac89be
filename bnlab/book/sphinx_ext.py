"""Sphinx extension of the course book.

* Serves MathJax 3 from the build itself: it copies the ES5 bundle shipped by the PyPI package
  ``django-static-mathjax`` into ``_static/mathjax`` (``mathjax_path`` in _config.yml points
  there), so that math renders offline and no page requests a CDN.
* Chooses the edition: ``BNLAB_EDITION=instructor`` shows the answers of the chapter questions;
  the learner edition (default) removes them from the HTML.
* The role ``{notebook}`STEM``` links a chapter to its exercise: the learner notebook itself
  (copied into the build, so it downloads offline) and launch links (Colab, Binder) that open
  ``notebooks/STEM.ipynb`` of the repository named once in _config.yml. Launch links never
  point at a chapter's source or at solutions/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Only what tex-chtml.js loads: the speech engine, SVG/MathML variants and node entry are not.
_MATHJAX_SKIP = ("sre", "*-full*", "*-svg*", "mml-*", "tex-mml-*", "node-main.js", "latest.js")


def mathjax_source() -> Path:
    import mathjax  # the django-static-mathjax distribution

    src = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5"
    if not (src / "tex-chtml.js").is_file():
        raise RuntimeError(f"MathJax bundle not found at {src}; reinstall django-static-mathjax")
    return src


def edition() -> str:
    value = os.environ.get("BNLAB_EDITION", "learner")
    if value not in ("learner", "instructor"):
        raise ValueError(f"BNLAB_EDITION={value!r}: use 'learner' or 'instructor'")
    return value


REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO_ROOT / "notebooks"


def _repository(config) -> tuple[str, str]:
    options = config.html_theme_options or {}
    url = str(options.get("repository_url", "")).rstrip("/")
    return url, str(options.get("repository_branch", "main") or "main")


def notebook_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """{notebook}`02_forward_pass`: download link + launch links for a learner notebook."""
    from docutils import nodes

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
    config.hide_solutions = edition() != "instructor"
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
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _copy_notebooks)
    app.add_role("notebook", notebook_role)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
