"""Run the visible test cells of the NumPy learner notebooks, as a learner's kernel would.

    python tests/visible_offline.py [--no-frameworks]

Each notebook is notebooks/STEM.ipynb (no hidden tests) with the answer cells of the
instructor's solution, of every corpus file (tests/corpus/STEM/*.py) and of nobody (the blank
notebook). With --no-frameworks, importing torch, tensorflow or keras raises ImportError (a
`sys.meta_path` finder installed before anything else), as for a learner who installed only
`bnlab[learner]`. Prints one JSON object: the outcome of every graded cell (null when it passed,
else the diagnosis its check named, "failed" when none, "exception: Type" for other errors), the
time the solution's visible checks took per notebook, and the frameworks found in sys.modules at
the end. Used by tests/test_learner_setup.py in a subprocess.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HIDDEN = ("torch", "tensorflow", "keras")


class NoFrameworks:
    """A meta path finder that makes the deep-learning frameworks impossible to import."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden)", name=fullname)
        return None


def run_notebook(nb: dict, stem: str, Failure, demos: bool) -> tuple[dict, float, float]:
    """(grade id -> outcome, seconds in graded cells, seconds in all cells)."""
    ns: dict = {"__name__": "__main__"}
    outcomes: dict[str, str | None] = {}
    checks_s = total_s = 0.0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not (demos or meta.get("grade") or meta.get("solution") or meta.get("locked")):
            continue
        source = "".join(cell["source"])
        start = time.perf_counter()
        try:
            exec(compile(source, f"<{stem}:{cell.get('id')}>", "exec"), ns)
            outcome = None
        except Failure as err:
            outcome = err.verdict.diagnosis or "failed"
        except Exception as err:  # noqa: BLE001 - a broken answer makes later cells fail
            outcome = f"exception: {type(err).__name__}"
        elapsed = time.perf_counter() - start
        total_s += elapsed
        if meta.get("grade"):
            outcomes[meta["grade_id"]] = outcome
            checks_s += elapsed
    return outcomes, checks_s, total_s


def main(argv: list[str]) -> int:
    if "--no-frameworks" in argv:
        sys.meta_path.insert(0, NoFrameworks())
    start = time.perf_counter()
    import bnlab.checks  # noqa: F401 - timed: what a notebook's imports cell pays

    import_s = time.perf_counter() - start
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import contextlib
    import io

    from corpus_tools import cohort, submission

    from bnlab.checks.harness import Failure
    from bnlab.grading.visible_references import numpy_stems

    result = {"import_s": import_s, "outcomes": {}, "timing": {}}
    for stem in numpy_stems():
        result["outcomes"][stem] = {}
        for student, (answers, _expect) in cohort(stem).items():
            nb = submission(stem, answers)
            with contextlib.redirect_stdout(io.StringIO()):
                outcomes, checks_s, total_s = run_notebook(
                    nb, stem, Failure, student == "solution"
                )
            result["outcomes"][stem][student] = outcomes
            if student == "solution":
                result["timing"][stem] = {"checks_s": checks_s, "notebook_s": total_s}
    result["frameworks_loaded"] = sorted(
        {m.partition(".")[0] for m in sys.modules} & {*HIDDEN, "jax", "tf_keras"}
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
