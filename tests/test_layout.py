"""The package's rooms: no import cycle anywhere, and the learner's side never reaches grading.

The import graph is read from the source (every `import` and `from ... import`, at module level
or inside functions), so an import that only runs on some path still counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bnlab"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of this package it imports (submodules resolved exactly: importing
    `bnlab.checks.harness` is an edge to that module, not to every module of `bnlab.checks`)."""
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            for target in targets:
                while target and target not in modules:  # `import bnlab.x.y` names a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


GRAPH = import_graph(_modules())


def test_the_graph_reader_sees_imports_and_cycles():
    """The reader itself, on a small graph and on this package (so the tests below can fail)."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert "bnlab.checks.harness" in GRAPH["bnlab.checks.forward"]
    assert "bnlab.grading.intake" in GRAPH["bnlab.grading.grader"]
    assert "bnlab.checks" in GRAPH["bnlab.grading.grader"]  # a function-level import


def test_no_import_cycle_in_the_package():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def _reach(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


@pytest.mark.parametrize(
    "room, forbidden",
    [
        ("bnlab.checks", ("bnlab.grading", "bnlab.book", "bnlab.cli")),
        ("bnlab.core", ("bnlab.checks", "bnlab.grading", "bnlab.book", "bnlab.cli")),
        ("bnlab.book", ("bnlab.grading", "bnlab.checks", "bnlab.cli")),
        ("bnlab.grading", ("bnlab.book", "bnlab.cli")),
    ],
)
def test_each_room_depends_only_downwards(room, forbidden):
    """checks and book sit on core; grading sits on checks and core; only the CLI sees all."""
    members = [m for m in GRAPH if m == room or m.startswith(room + ".")]
    assert members
    for module in members:
        bad = sorted(m for m in _reach(module) if m.startswith(forbidden))
        assert not bad, f"{module} reaches {bad}"


def test_the_sandbox_mounts_only_the_learner_side():
    """What the sandbox sees of the package is enough to run the runner and every check, and
    none of the grading service's other modules or the book's helpers."""
    from bnlab.grading import sandbox

    mounted = [p.resolve() for p in sandbox.learner_side()]

    def visible(module: str) -> bool:
        path = _modules()[module].resolve()
        return any(path == m or m in path.parents for m in mounted)

    needed = {"bnlab.grading.sandbox_runner"} | _reach("bnlab.grading.sandbox_runner")
    assert all(visible(m) for m in needed), sorted(m for m in needed if not visible(m))
    hidden = [m for m in GRAPH if m.startswith(("bnlab.grading.", "bnlab.book", "bnlab.cli"))]
    hidden.remove("bnlab.grading.sandbox_runner")
    assert hidden and not any(visible(m) for m in hidden)
