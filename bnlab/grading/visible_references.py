"""`bn-course references`: the framework references that the NumPy notebooks' visible checks
need, computed with the real torch and Keras and shipped inside `bnlab` (see
:mod:`bnlab.core.refcache`), so a learner without the frameworks runs the same visible checks.

What is shipped is exactly what the judges ask for on the visible checks' inputs: every
`checks.check(...)` line of a test cell in solutions/STEM.py outside the hidden-test blocks (its
seed included; hidden seeds are never shipped). Each visible check is judged with the
instructor's solution and then with every single array of that probe perturbed or removed, so
the references of every failure path (known mistakes, per-case diagnoses) are recorded too.

    bn-course references --write   compute and write bnlab/checks/data/visible_references.zip
    bn-course references --check   compute afresh and exit 1 if the shipped file differs
"""

from __future__ import annotations

import ast
import dataclasses
import sys
from importlib import metadata
from pathlib import Path

from bnlab.core import refcache, reftable

HIDDEN = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def numpy_stems() -> list[str]:
    """The assignments whose exercises are NumPy (no check of theirs uses a framework)."""
    from bnlab.checks import CHECKS, framework_stems

    return sorted({s.stem for s in CHECKS.values()} - set(framework_stems()))


def _without_hidden(source: str) -> str:
    keep, hidden = [], False
    for line in source.splitlines():
        if line.strip() == HIDDEN[0]:
            hidden = True
        elif line.strip() == HIDDEN[1]:
            hidden = False
        elif not hidden:
            keep.append(line)
    return "\n".join(keep)


def visible_checks(stem: str) -> list[tuple[str, int]]:
    """(check id, seed) of every check a learner's notebook runs in its visible test cells."""
    from bnlab.core.course import source_notebook

    found = []
    for cell in source_notebook(stem).cells:
        if cell.cell_type != "code" or not cell.metadata.get("nbgrader", {}).get("grade"):
            continue
        for node in ast.walk(ast.parse(_without_hidden(cell.source))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("check", "run")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "checks"
            ):
                check_id = ast.literal_eval(node.args[0])
                seeds = [ast.literal_eval(k.value) for k in node.keywords if k.arg == "seed"]
                found.append((check_id, seeds[0] if seeds else 0))
    return found


def solution_namespace(stem: str) -> dict:
    """The instructor's answers: the notebook's imports and solution cells, executed."""
    from bnlab.core.course import source_notebook

    ns: dict = {"__name__": "__main__"}
    for cell in source_notebook(stem).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell["id"] == "imports" or meta.get("solution"):
            exec(compile(cell.source, f"<{stem}:{cell['id']}>", "exec"), ns)
    return ns


def _perturbations(pr):
    """The probe itself, then each array changed (floats + 1, booleans flipped) or missing."""
    yield pr
    for k, a in pr.arrays.items():
        rest = {n: v for n, v in pr.arrays.items() if n != k}
        if a.dtype.kind in "fc":
            yield dataclasses.replace(pr, arrays={**pr.arrays, k: a + 1})
        elif a.dtype.kind == "b":
            yield dataclasses.replace(pr, arrays={**pr.arrays, k: ~a})
        yield dataclasses.replace(pr, arrays=rest)


def compute(log=print) -> dict[str, tuple[str, object]]:
    """{key: (label, value)} of every reference the visible checks of the NumPy notebooks ask
    for, computed now with the real frameworks (imported here)."""
    from bnlab.checks import CHECKS
    from bnlab.core.frameworks import import_keras, import_torch

    import_torch()  # fails here without the real frameworks: the table is never copied
    import_keras()  # from itself
    with refcache.recording() as record:
        for stem in numpy_stems():
            ns = solution_namespace(stem)
            for check_id, seed in visible_checks(stem):
                spec = CHECKS[check_id]
                cases = spec.module.cases(spec.prop, seed)
                pr = spec.module.probe(*[ns[n] for n in spec.names], cases)
                first = spec.module.judge(spec.prop, cases, pr, spec.what)
                if not first.passed:
                    raise SystemExit(f"{stem}: the solution fails {check_id}: {first.message}")
                for variant in _perturbations(pr):
                    try:
                        spec.module.judge(spec.prop, cases, variant, spec.what)
                    except KeyError:  # an array no real probe leaves out silently
                        pass
                log(f"{stem}: {check_id} (seed {seed}): {len(record)} references so far")
        return dict(record)


def _meta() -> dict:
    versions = {}
    for dist in ("numpy", "torch", "tensorflow", "keras"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "what": "references of the visible checks of the NumPy notebooks (bn-course references)",
        "visible_checks": {stem: visible_checks(stem) for stem in numpy_stems()},
        "generated_with": versions,  # informational: keys never depend on versions
    }


def write(path: Path = refcache.SHIPPED) -> int:
    entries = compute(log=lambda line: print(line, file=sys.stderr))
    reftable.write(path, entries, _meta())
    size = path.stat().st_size
    print(f"wrote {path} ({len(entries)} references, {size / 1024:.0f} KiB)")
    return 0


def check(path: Path = refcache.SHIPPED) -> int:
    """Exit status 1 when the shipped file is missing or differs from a fresh computation."""
    if not path.is_file():
        print(f"bn-course references: {path} is missing; run `bn-course references --write`")
        return 1
    shipped = reftable.Table(path)
    fresh = compute(log=lambda line: None)
    problems = []
    listed = {
        stem: [tuple(c) for c in checks]
        for stem, checks in shipped.meta.get("visible_checks", {}).items()
    }
    if listed != {stem: visible_checks(stem) for stem in numpy_stems()}:
        problems.append("the visible checks listed in the file are not the notebooks' own")
    for k in sorted(set(fresh) - set(shipped.entries)):
        problems.append(f"not shipped: {fresh[k][0]}")
    for k in sorted(set(shipped.entries) - set(fresh)):
        problems.append(f"shipped but no longer needed: {shipped.entries[k]['call']}")
    roundoff = 0
    for k in sorted(set(fresh) & set(shipped.entries)):
        label, value = fresh[k]
        got = shipped.get(k)
        why = reftable.difference(got, value)
        if why:
            problems.append(f"differs: {label}: {why}")
        elif reftable.difference(got, value, rtol=0.0):
            roundoff += 1
    for line in problems[:50]:
        print("bn-course references:", line, file=sys.stderr)
    if problems:
        print(
            f"bn-course references: {len(problems)} difference(s) between {path.name} and a "
            "fresh computation; run `bn-course references --write` (never edit it by hand)",
            file=sys.stderr,
        )
        return 1
    note = f", {roundoff} of them equal only to roundoff (1e-10)" if roundoff else ""
    print(
        f"{path.name} equals a fresh computation with the real frameworks: "
        f"{len(fresh)} references{note}"
    )
    return 0
