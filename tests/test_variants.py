"""Generated valid implementations (tests/variants.py) all earn full marks: no false negatives.

Each program runs like a learner's notebook: the locked imports, the generated answer cells,
then every graded test cell (visible and hidden checks), in-process. The judges' framework
references are learner-independent, so they are computed once and read back from a reference
cache in a scratch folder, exactly as `bn-course grade` does. A sample of the same programs also
goes through `bn-course grade` (sandboxed) in tests/test_hostile_grading.py.
"""

from __future__ import annotations

import pytest
from corpus_tools import answer_cells, notebook_with
from variants import GENERATORS, space_size

from bnlab.checks.harness import Failure

# Programs per exercise: the NumPy exercises are cheap to judge; each framework program trains
# a small model (Keras fit) or runs gradcheck, so fewer of those.
COUNTS = {
    "02_forward_pass": 200,
    "03_backward_pass": 200,
    "04_train_vs_inference": 200,
    "05_frameworks_torch": 24,
    "05_frameworks_keras": 9,
    "10_batchnorm_at_scale": 12,  # each check forks a 2-process gloo group
}
SUMMARY: dict[str, str] = {}


def run_program(stem: str, answers: dict[str, str]) -> dict[str, str]:
    """grade id -> failure message, for every graded cell that did not pass."""
    ns: dict = {"__name__": "__main__"}
    known = set(answer_cells(stem))
    assert set(answers) <= known, set(answers) - known
    failures = {}
    for cell in notebook_with(stem, answers).cells:
        meta = cell.metadata.get("nbgrader", {})
        if not (cell["id"] == "imports" or cell["id"] in known or meta.get("grade")):
            continue  # demonstrations (plots, training curves) are not graded
        try:
            exec(compile(cell.source, f"<{stem}:{cell['id']}>", "exec"), ns)
        except Failure as err:
            failures[meta.get("grade_id", cell["id"])] = str(err)
        except Exception as err:  # noqa: BLE001
            failures[meta.get("grade_id", cell["id"])] = f"{type(err).__name__}: {err}"
    return failures


@pytest.mark.slow
@pytest.mark.parametrize("stem", list(GENERATORS))
def test_generated_valid_programs_earn_full_marks(stem, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BNLAB_REFERENCE_CACHE", str(tmp_path / "references"))
    programs = list(GENERATORS[stem](COUNTS[stem]))
    sources = {tuple(sorted(a.items())) for _, a in programs}
    assert len(sources) == len(programs) == min(COUNTS[stem], space_size(stem))
    wrong = {}
    for name, answers in programs:
        failures = run_program(stem, answers)
        if failures:
            wrong[name] = failures
    capsys.readouterr()  # the checks' "ok" lines
    SUMMARY[stem] = (
        f"{stem}: {len(programs)} generated valid programs (of {space_size(stem)} possible), "
        f"{len(wrong)} false negatives"
    )
    print(SUMMARY[stem])
    assert not wrong, "\n".join(f"{k}: {v}" for k, v in list(wrong.items())[:5])


def test_a_wrong_slot_is_caught(monkeypatch):
    """The harness above can fail: one slot made wrong (biased running variance) loses the
    running-variance test, and the eval test that uses it, and nothing else."""
    import variants

    monkeypatch.setitem(variants.UNBIASED, "ddof=1", "x.var(axis=0)")
    name, answers = next(
        (n, a) for n, a in variants.layer_programs(50) if "/ ddof=1 /" in f"/ {n} /"
    )
    assert set(run_program("04_train_vs_inference", answers)) == {"test_running_var", "test_eval"}
