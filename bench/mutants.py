"""Mutation testing of the hidden tests: are the checks strong enough to catch every wrong answer?

    python bench/mutants.py [STEM ...] [--limit N] [--write]

For each answer cell of the instructor's solution, every single-point mutant is made from its
syntax tree: an operator swapped (+ -, * /, ** *), a number changed (an axis 0 -> 1, 2 -> 1,
-0.5 -> 0.5, 1 -> 0, ...), mean/sum and var/std swapped, a square root dropped, a term of a sum
or product dropped, a unary minus dropped. A mutant whose probes hand back the same arrays as the
solution's on the checks' seeded inputs (and on a second seed) is *equivalent* and set aside.
The rest are graded in one batch with the checks that nbgrader and `bn-course grade` run (all
graded cells, visible and hidden, in-process). A mutant is *caught* when it loses a point; its
failure is *explained* when the message names a mistake (a diagnosis) or the property or step
that broke (a `Property:` line, or which state after which step). Unexplained failures are
listed. With --write, a section with the numbers and the machine is appended to RESULTS.md.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("BNLAB_REFERENCE_CACHE", tempfile.mkdtemp(prefix="bnlab-mutants-"))

from bench_book import machine  # noqa: E402
from corpus_tools import answer_cells, notebook_with, solution_source  # noqa: E402

from bnlab import checks  # noqa: E402
from bnlab.checks.harness import Failure  # noqa: E402

SWAPS = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.Pow: ast.Mult,
}
NAME_SWAPS = {"mean": "sum", "sum": "mean", "var": "std", "std": "var"}
STEP_WORDS = (
    "Property:",
    "after step",
    "after construction",
    "in eval mode",
    "eval mode",
    "training mode",
    "after loading",
    "must be",
    "a new layer",
    "shape",
)


def _constant_changes(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return []
    out = {value + 1, value - 1 if value != 1 else 0, -value if value else 1}
    if isinstance(value, float):
        out |= {value * 2, value / 2}
    return [v for v in out if v != value]


def mutants(source: str):
    """(description, mutated source) for every single-point mutation of the cell."""
    tree = ast.parse(source)
    nodes = list(ast.walk(tree))
    for i, node in enumerate(nodes):
        edits = []
        if isinstance(node, ast.BinOp) and type(node.op) in SWAPS:
            edits.append(
                (
                    f"{type(node.op).__name__}->{SWAPS[type(node.op)].__name__}",
                    lambda n: setattr(n, "op", SWAPS[type(n.op)]()),
                )
            )
            if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
                edits.append(("drop right operand", "left"))
                edits.append(("drop left operand", "right"))
        elif isinstance(node, ast.Constant):
            for v in _constant_changes(node.value):
                edits.append((f"{node.value!r}->{v!r}", lambda n, v=v: setattr(n, "value", v)))
        elif isinstance(node, ast.Attribute) and node.attr in NAME_SWAPS:
            edits.append(
                (
                    f".{node.attr}->.{NAME_SWAPS[node.attr]}",
                    lambda n: setattr(n, "attr", NAME_SWAPS[n.attr]),
                )
            )
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("sqrt", "rsqrt"):
            edits.append((f"drop {node.func.attr}", "arg0"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            edits.append(("drop unary minus", "operand"))
        for label, edit in edits:
            mutated = copy.deepcopy(tree)
            target = list(ast.walk(mutated))[i]
            if callable(edit):
                edit(target)
            else:  # replace the node by one of its children
                child = {
                    "left": getattr(target, "left", None),
                    "right": getattr(target, "right", None),
                    "arg0": target.args[0] if getattr(target, "args", None) else None,
                    "operand": getattr(target, "operand", None),
                }[edit]
                if child is None or not _replace(mutated, target, child):
                    continue
            try:
                code = ast.unparse(ast.fix_missing_locations(mutated))
            except Exception:  # noqa: BLE001
                continue
            line = getattr(node, "lineno", 0)
            yield f"line {line}: {label}", code


def _replace(tree, old, new) -> bool:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return True
            if isinstance(value, list) and old in value:
                value[value.index(old)] = new
                return True
    return False


def _namespace(stem: str, answers: dict[str, str]) -> dict:
    ns: dict = {"__name__": "__main__"}
    known = set(answer_cells(stem))
    for cell in notebook_with(stem, answers).cells:
        if cell["id"] == "imports" or cell["id"] in known:
            exec(compile(cell.source, f"<{stem}:{cell['id']}>", "exec"), ns)
    return ns


def fingerprint(stem: str, answers: dict[str, str]):
    """Every check's probe arrays for these answers (two seeds): equal means equivalent."""
    try:
        ns = _namespace(stem, answers)
    except Exception as err:  # noqa: BLE001
        return ("does not run", repr(err))
    prints = {}
    for check_id, spec in checks.CHECKS.items():
        if spec.stem != stem:
            continue
        for seed in (0, 7):
            try:
                learner = [ns[n] for n in spec.names]
                probe = spec.module.probe(*learner, spec.module.cases(spec.prop, seed))
            except Exception as err:  # noqa: BLE001
                prints[(check_id, seed)] = ("probe", repr(err))
                continue
            prints[(check_id, seed)] = (probe.arrays, sorted(probe.errors), probe.framework_calls)
    return prints


def same(a, b) -> bool:
    if isinstance(a, tuple) and a and a[0] == "does not run":
        return False
    if a.keys() != b.keys():
        return False
    for k in a:
        (arr_a, err_a, fw_a), (arr_b, err_b, fw_b) = (
            a[k] if len(a[k]) == 3 else (None, a[k], None),
            b[k] if len(b[k]) == 3 else (None, b[k], None),
        )
        if err_a != err_b or fw_a != fw_b:
            return False
        if arr_a is None or arr_b is None:
            if arr_a is not arr_b:
                return False
            continue
        if arr_a.keys() != arr_b.keys():
            return False
        for name in arr_a:
            x, y = arr_a[name], arr_b[name]
            if x.shape != y.shape or x.dtype != y.dtype:
                return False
            if x.dtype.kind in "fc":
                # Rounding only: a term that is zero in exact arithmetic (mean(x - mu) = 0)
                # changes float32 results in the 7th digit. Every exercise also has float64
                # cases, judged at ~1e-9, so a real difference still shows there.
                tol = 1e-4 if x.dtype == np.float32 else 1e-9
                if not np.allclose(x, y, rtol=tol, atol=tol, equal_nan=True):
                    return False
            elif not np.array_equal(x, y):
                return False
    return True


def grade(stem: str, answers: dict[str, str]) -> dict[str, tuple[str | None, str]]:
    """grade id -> (diagnosis, message) for every graded cell that failed."""
    ns: dict = {"__name__": "__main__"}
    known = set(answer_cells(stem))
    failed = {}
    import contextlib
    import io

    for cell in notebook_with(stem, answers).cells:
        meta = cell.metadata.get("nbgrader", {})
        if not (cell["id"] == "imports" or cell["id"] in known or meta.get("grade")):
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(cell.source, f"<{stem}:{cell['id']}>", "exec"), ns)
        except Failure as err:
            failed[meta.get("grade_id", cell["id"])] = (err.verdict.diagnosis, str(err))
        except Exception as err:  # noqa: BLE001
            failed[meta.get("grade_id", cell["id"])] = (
                "exception",
                f"{type(err).__name__}: {err}",
            )
    return failed


def explained(failures: dict[str, tuple[str | None, str]]) -> bool:
    for diagnosis, message in failures.values():
        if diagnosis and diagnosis != "exception":
            return True
        if diagnosis == "exception" and ("raised" in message or "Error" in message):
            return True  # the learner's code crashed: the message is the error itself
        if any(word in message for word in STEP_WORDS):
            return True
    return False


def run(stem: str, limit: int | None) -> dict:
    cells = answer_cells(stem)
    base = {cid: solution_source(stem, cid) for cid in cells}
    original = fingerprint(stem, base)
    made = equivalent = caught = explained_n = 0
    missed, unexplained = [], []
    start = time.perf_counter()
    for cid in cells:
        for label, code in mutants(base[cid]):
            if limit and made >= limit:
                break
            made += 1
            answers = {**base, cid: code}
            if same(fingerprint(stem, answers), original):
                equivalent += 1
                continue
            failures = grade(stem, answers)
            if not failures:
                missed.append(f"{cid} {label}")
                continue
            caught += 1
            if explained(failures):
                explained_n += 1
            else:
                first = next(iter(failures.items()))
                unexplained.append(f"{cid} {label}: {first[0]}: {first[1][1][:140]}")
    non_equivalent = made - equivalent
    return {
        "stem": stem,
        "mutants": made,
        "equivalent": equivalent,
        "non_equivalent": non_equivalent,
        "caught": caught,
        "explained": explained_n,
        "missed": missed,
        "unexplained": unexplained,
        "seconds": time.perf_counter() - start,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "stems",
        nargs="*",
        default=["02_forward_pass", "03_backward_pass", "04_train_vs_inference"],
    )
    parser.add_argument("--limit", type=int, help="at most N mutants per exercise")
    parser.add_argument("--write", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    results = [run(stem, args.limit) for stem in args.stems]
    lines = [
        "",
        f"## Mutation testing of the hidden tests ({time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {machine()}. Command: `python bench/mutants.py {' '.join(args.stems)}`. "
        "Single-point mutants of the instructor's answer cells; equivalent ones (the same probe "
        "arrays on two seeds, up to rounding: 1e-9 in float64, 1e-4 in float32) set aside; the "
        "rest graded in-process with every graded cell.",
        "",
        "| exercise | mutants | equivalent | non-equivalent | caught | caught % | explained "
        "| explained % | time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ne = max(r["non_equivalent"], 1)
        c = max(r["caught"], 1)
        lines.append(
            f"| {r['stem']} | {r['mutants']} | {r['equivalent']} | {r['non_equivalent']} | "
            f"{r['caught']} | {100 * r['caught'] / ne:.1f} | {r['explained']} | "
            f"{100 * r['explained'] / c:.1f} | {r['seconds']:.0f} s |"
        )
    for r in results:
        for m in r["missed"]:
            lines.append(f"- missed (non-equivalent, full marks): {r['stem']} {m}")
        for u in r["unexplained"]:
            lines.append(f"- unexplained: {r['stem']} {u}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        with open(REPO / "bench" / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
