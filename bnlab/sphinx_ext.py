"""Sphinx extension of the course book.

* Serves MathJax 3 from the build itself: it copies the ES5 bundle shipped by the PyPI package
  ``django-static-mathjax`` into ``_static/mathjax`` (``mathjax_path`` in _config.yml points
  there), so that math renders offline and no page requests a CDN.
* Chooses the edition: ``BNLAB_EDITION=instructor`` shows the answers of the chapter questions;
  the learner edition (default) removes them from the HTML.
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
    return {"parallel_read_safe": True, "parallel_write_safe": True}
