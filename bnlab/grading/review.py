"""What in a submission's own code an instructor should read before trusting its grade.

The sandbox bounds what learner code can do to the host, and the judge outside decides every
point; but the framework guard (`sandbox_runner.KernelBlock`) and this run's input seeds live in
the learner's process, so code that digs into that process (its objects through `gc`, its frames,
raw memory through `ctypes`, the dispatcher through `torch.library`, stdin, the grader's own
modules) can undo the block or read the seeds (README, "Known limits"). No honest answer to these
exercises needs any of that. This module reads the learner's cells (outside the sandbox: their
source, not anything they printed) and names each construct of that kind, with its cell and line;
`bn-course grade` lists them in the report and the CSV for review. Findings never change a score:
they are a reading list, not a verdict.

It is a static reading, so it names what the code says, not what it computes. The usual ways
of building a name at run time (`getattr` with a computed name, `eval`, `exec`, `compile`,
`__import__`, `importlib`, `pkgutil.resolve_name`, a format string with a dunder, `vars`,
`globals`, a module's `__dict__`) are named themselves, and a cell this reader cannot parse is
named as such (a `__future__` import can make the kernel accept what the plain parser
refuses); but a list of constructs is never complete.
"""

from __future__ import annotations

import ast
import functools
import re

# Modules whose import (or any part of it) an answer to these exercises never needs.
MODULES = {
    "gc": "the interpreter's object lists (gc)",
    "ctypes": "raw memory and C calls (ctypes)",
    "_ctypes": "raw memory and C calls (_ctypes)",
    "inspect": "stack frames and source (inspect)",
    "importlib": "imports by computed name (importlib)",
    "builtins": "the builtins module",
    "threading": "threads (threading)",
    "_thread": "threads (_thread)",
    "multiprocessing": "other processes (multiprocessing)",
    "concurrent": "threads or processes (concurrent)",
    "subprocess": "other programs (subprocess)",
    "signal": "signal handlers (signal)",
    "atexit": "exit handlers (atexit)",
    "faulthandler": "faulthandler",
    "marshal": "code objects (marshal)",
    "types.CodeType": "code objects (types.CodeType)",
    "types.FunctionType": "function objects (types.FunctionType)",
    "types.LambdaType": "function objects (types.LambdaType)",
    "types.FrameType": "frames (types.FrameType)",
    "types.TracebackType": "tracebacks (types.TracebackType)",
    "types.CellType": "closure cells (types.CellType)",
    "types.ModuleType": "module objects (types.ModuleType)",
    "dis": "bytecode (dis)",
    "code": "an interactive interpreter (code)",
    "codeop": "compilation (codeop)",
    "mmap": "memory maps (mmap)",
    "pty": "terminals (pty)",
    "socket": "sockets (socket)",
    "resource": "resource limits (resource)",
    "weakref": "references to live objects (weakref)",
    "numpy.ctypeslib": "raw memory (numpy.ctypeslib)",
    "numpy.lib.stride_tricks.as_strided": "raw memory views (as_strided)",
    "operator.attrgetter": "attributes by computed name (operator.attrgetter)",
    "operator.methodcaller": "methods by computed name (operator.methodcaller)",
    "traceback.walk_stack": "stack frames (traceback.walk_stack)",
    "traceback.walk_tb": "stack frames (traceback.walk_tb)",
    "sqlite3": "databases (sqlite3)",
    "pickle": "object deserialisation (pickle)",
    "urllib": "network access (urllib)",
    "http": "network access (http)",
    "bnlab": "the course's grading and check modules",
    "IPython": "the notebook shell (IPython)",
    "ipykernel": "the notebook kernel (ipykernel)",
    "torch.library": "PyTorch's operator registry (torch.library)",
    "torch.overrides": "PyTorch's function interception (torch.overrides)",
    "torch.utils._python_dispatch": "PyTorch's dispatch interception",
    "torch._C": "PyTorch's C internals (torch._C)",
    "tensorflow.python": "TensorFlow's internals (tensorflow.python)",
    "torch.multiprocessing": "other processes (torch.multiprocessing)",
    "pkgutil": "names resolved from strings (pkgutil)",
    "runpy": "code run from files or names (runpy)",
    "timeit": "code run from strings (timeit)",
    "unittest.mock": "patches by dotted name (unittest.mock)",
    "asyncio": "threads and event loops (asyncio)",
    "io.open": "opens files or descriptors (io.open)",
    "io.FileIO": "opens files or descriptors (io.FileIO)",
    "logging.currentframe": "stack frames (logging.currentframe)",
}
# Attributes of `sys` and `os` that reach the process itself rather than compute anything.
SYS_ATTRS = {
    "modules", "_getframe", "_current_frames", "setprofile", "settrace", "getprofile",
    "gettrace", "stdin", "__stdin__", "meta_path", "path_hooks", "path_importer_cache",
    "addaudithook", "_clear_type_cache", "last_traceback", "monitoring",
}  # fmt: skip
OS_CALLS = re.compile(
    r"^(read|open|fdopen|dup2?|system|popen|fork|forkpty|kill|killpg|_exit|exec\w*|spawn\w*"
    r"|posix_spawn\w*|setuid|setgid|chdir|pipe2?|mkfifo|symlink|link)$"
)
# Attributes that lead from an ordinary object to code, frames, globals or every class.
DUNDERS = {
    "__code__", "__globals__", "__closure__", "__subclasses__", "__builtins__", "__import__",
    "__loader__", "__spec__", "__getattribute__", "__self__", "__func__", "__wrapped__",
    "__reduce__", "__reduce_ex__", "__bases__", "__base__", "__mro__",
    "__traceback__", "__defaults__", "__kwdefaults__", "__torch_dispatch__",
    "__torch_function__",
    "__array_interface__", "__array_struct__",
}  # fmt: skip
FRAME_ATTRS = {
    "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame",
    "tb_next", "gi_frame", "cr_frame", "ag_frame", "co_code", "co_consts", "gi_code",
}  # fmt: skip
BUILTINS = {
    "exec": "exec()",
    "eval": "eval()",
    "compile": "compile()",
    "__import__": "__import__()",
    "globals": "globals()",
    "locals": "locals()",
    "vars": "vars()",
    "breakpoint": "breakpoint()",
    "get_ipython": "the notebook shell (get_ipython)",
}
# Builtins named only where they are called (a parameter called `input` is no finding).
CALLED_BUILTINS = {"open": "opens a file", "input": "reads stdin (input)"}
# Modules whose attributes a learner may set honestly (settings, not code).
SETTINGS = ("torch.backends.", "pandas.options.")
ATTR_BUILTINS = {"getattr", "setattr", "delattr", "hasattr"}
# Magics that only time or configure the code they are given (that code is read too).
TIMING_MAGICS = {"time", "timeit", "prun"}
QUIET_MAGICS = {"matplotlib", "precision", "pprint", "who", "whos", "pinfo", "pinfo2"}
# Options of those magics that take a value (`%prun -s cumulative f(x)`).
VALUE_OPTIONS = {"-n", "-r", "-p", "-s", "-T", "-D", "-l", "-c"}
# What is read at all: an honest answer cell is a few kB; a huge or deeply nested one is named
# for review instead of parsed (its syntax tree could cost the grader far more memory than the
# text). At most MAX_FINDINGS are kept per submission.
CELL_CHARS = 100_000
MAX_FINDINGS = 40
STRINGS = re.compile(
    r"__("
    + "|".join(d.strip("_") for d in DUNDERS)
    + r")__|\b("
    + "|".join(FRAME_ATTRS)
    + r")\b|/proc\b|^/out\b|/dev/(stdin|fd|mem|kmem)\b"
)


@functools.cache
def _transformer():
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()  # stateless between cells: one per process


def _transform(source: str) -> str:
    """The cell as IPython runs it (magics and shell escapes become `get_ipython()` calls)."""
    return _transformer().transform_cell(source)


def _parse(source: str) -> ast.AST | None:
    try:
        return compile(
            source, "<cell>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
    except (SyntaxError, ValueError):
        return None


def _dotted(node: ast.AST) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None for anything that is not names and attributes."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def _module_finding(dotted: str) -> str | None:
    for name, what in MODULES.items():
        if dotted == name or dotted.startswith(name + "."):
            return what
    return None


def _canonical(parts: list[str]) -> list[str]:
    """A dotted path with the module re-exports that lead to `sys` and `os` folded: `os.sys.x`
    is `sys.x`, `os.path.os.x` is `os.x`."""
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] in ("sys", "os"):
            return parts[i:]
    return parts


def _safe_name(node: ast.AST) -> bool:
    """A computed attribute name that cannot be a dunder, private or frame one: an f-string
    or a concatenation that starts with letters no frame attribute starts with (`f"bn{i}"`,
    `"layer_" + str(i)`; not `"f_" + "back"`)."""
    first = node
    while isinstance(first, ast.BinOp) and isinstance(first.op, ast.Add):
        first = first.left
    if isinstance(first, ast.JoinedStr) and first.values:
        first = first.values[0]
    if first is node or not isinstance(first, ast.Constant) or not isinstance(first.value, str):
        return False
    prefix = first.value
    return prefix[:1].isalpha() and not any(a.startswith(prefix) for a in FRAME_ATTRS)


class _Reader(ast.NodeVisitor):
    def __init__(self):
        self.found: list[tuple[int, str]] = []
        self.modules: dict[str, str] = {}  # local name -> module (dotted)

    def flag(self, node: ast.AST, what: str) -> None:
        self.found.append((getattr(node, "lineno", 1), what))

    def _resolve(self, node: ast.AST) -> list[str] | None:
        """The module path that `node` (names and attributes) refers to, or None."""
        dotted = _dotted(node)
        if dotted and dotted[0] in self.modules:
            return _canonical([*self.modules[dotted[0]].split("."), *dotted[1:]])
        return None

    # imports --------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            what = _module_finding(alias.name)
            if what:
                self.flag(node, f"imports {alias.name}: {what}")
            local = alias.asname or alias.name.split(".", 1)[0]
            self.modules[local] = alias.name if alias.asname else local

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = "." * node.level + (node.module or "")
        if base == "__future__":
            for alias in node.names:
                if alias.name != "annotations":
                    self.flag(node, f"from __future__ import {alias.name}: changes the syntax")
            return
        for alias in node.names:
            full = f"{base}.{alias.name}" if base else alias.name
            what = _module_finding(base) or _module_finding(full)
            if alias.name == "*" and (what or base in ("sys", "os")):
                self.flag(node, f"imports * from {base}")
                continue
            if what:
                self.flag(node, f"imports {full}: {what}")
            elif node.level == 0:
                self._module_attr(node, _canonical(full.split(".")))
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                self.flag(node, f"imports {full}: a private name")
            if node.level == 0 and alias.name != "*":
                self.modules[alias.asname or alias.name] = ".".join(_canonical(full.split(".")))

    # names, attributes, assignments ---------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if node.id in BUILTINS:
            self.flag(node, BUILTINS[node.id])
        elif node.id in ATTR_BUILTINS:  # not called here: passed on (e.g. to reduce)
            self.flag(node, f"{node.id} passed as a value")
        elif node.id in DUNDERS or node.id in ("__builtins__", "__loader__", "__spec__"):
            self.flag(node, f"{node.id}")
        elif (
            isinstance(node.ctx, ast.Load)
            and not getattr(node, "_attribute_base", False)
            and self.modules.get(node.id) in ("sys", "os")
        ):
            self.flag(node, f"the {self.modules[node.id]} module passed on as a value")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain, root = [], node  # the whole `a.b.c` at once, from its outermost attribute
        while isinstance(root, ast.Attribute):
            chain.append(root.attr)
            root = root.value
        for attr in chain:
            if attr in DUNDERS:
                self.flag(node, f".{attr}")
            elif attr in FRAME_ATTRS:
                self.flag(node, f".{attr} (a frame or code object)")
        parts = self._resolve(node)
        if parts:
            self._module_attr(node, parts)
            if "__dict__" in parts:
                self.flag(node, f"{'.'.join(parts)}: a module's namespace")
            full = ".".join(parts)
            if isinstance(node.ctx, (ast.Store, ast.Del)) and not full.startswith(SETTINGS):
                self.flag(node, f"replaces {full} (a module's attribute)")
        elif "__dict__" in chain and isinstance(root, ast.Name) and root.id in ("type", "object"):
            self.flag(node, f"{root.id}.__dict__: the namespace of every class")
        if isinstance(root, ast.Name):
            root._attribute_base = True
        self.visit(root)

    def _module_attr(self, node: ast.AST, parts: list[str]) -> None:
        full = ".".join(parts)
        what = _module_finding(full)
        if what and not _module_finding(parts[0]):  # `import torch` then `torch._C...`
            self.flag(node, f"{full}: {what}")
        elif parts[0] == "sys" and len(parts) > 1 and parts[1] in SYS_ATTRS:
            self.flag(node, f"sys.{parts[1]}")
        elif parts[0] == "os" and len(parts) > 1 and OS_CALLS.match(parts[1]):
            self.flag(node, f"os.{parts[1]}")
        elif any(p.startswith("_") and not p.startswith("__") for p in parts[1:]):
            self.flag(node, f"{full}: a module's private name")

    def _bind(self, target: ast.AST, value: ast.AST) -> None:
        """`t = np.testing` (or `(t := sys)`): `t` now names that module."""
        parts = self._resolve(value) if isinstance(value, (ast.Name, ast.Attribute)) else None
        if isinstance(target, ast.Name) and parts:
            self.modules[target.id] = ".".join(parts)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        for target in node.targets:
            self._bind(target, node.value)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.generic_visit(node)
        self._bind(node.target, node.value)

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for attr in node.kwd_attrs:  # `case object(__globals__=g)` reads an attribute
            if attr in DUNDERS or attr in FRAME_ATTRS:
                self.flag(node, f"a match pattern reading .{attr}")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name in DUNDERS:  # `__torch_dispatch__` sees every torch operation
            self.flag(node, f"defines {node.name}")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # a docstring or a bare string: inert
        self.generic_visit(node)

    # calls ----------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in CALLED_BUILTINS:
            self.flag(node, CALLED_BUILTINS[func.id])
        if isinstance(func, ast.Name) and func.id in ATTR_BUILTINS:
            name = node.args[1] if len(node.args) > 1 else None
            target = self._resolve(node.args[0]) if node.args else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                attr = name.value
                if attr in DUNDERS or attr in FRAME_ATTRS or attr == "__dict__":
                    self.flag(node, f"{func.id}(..., {attr!r})")
                if target:  # getattr(sys, "modules") is sys.modules
                    self._module_attr(node, _canonical([*target, attr]))
                    if func.id in ("setattr", "delattr"):
                        self.flag(
                            node, f"replaces {'.'.join(target)}.{attr} (a module's attribute)"
                        )
            elif target or name is None or not _safe_name(name):
                self.flag(node, f"{func.id}() with a computed attribute name")
            for part in [*node.args, *node.keywords]:
                self.visit(part)
            return
        if self._magic(node):
            return
        self.generic_visit(node)

    def _magic(self, node: ast.Call) -> bool:
        """`get_ipython().run_line_magic(...)` and the like, as IPython writes magics."""
        func = node.func
        if not (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name)
            and func.value.func.id == "get_ipython"
            and func.attr in ("run_line_magic", "run_cell_magic", "system", "getoutput")
        ):
            return False
        if not all(isinstance(a, ast.Constant) for a in node.args) or node.keywords:
            self.flag(node, "the notebook shell (get_ipython) with a computed argument")
            return True
        args = [a.value for a in node.args]
        if func.attr in ("system", "getoutput"):
            self.flag(node, "a shell command (!)")
            return True
        name = str(args[0]) if args else ""
        codes = []
        if name in TIMING_MAGICS:
            codes = [_strip_options(str(c)) for c in args[1:]]
        elif name == "config":  # IPython runs `cfg.` + the line
            codes = [f"cfg.{args[1]}"] if len(args) > 1 and str(args[1]).strip() else []
        elif name not in QUIET_MAGICS:
            self.flag(node, f"IPython magic %{name}")
            return True
        for code in codes:
            if not code.strip():
                continue
            tree = _parse(code)
            if tree is None:
                self.flag(node, f"%{name} of code that does not parse")
                continue
            sub = _Reader()
            sub.modules = dict(self.modules)
            sub.visit(tree)
            self.found += [(node.lineno - 1 + ln, w) for ln, w in sub.found]
        return True

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and STRINGS.search(node.value):
            self.flag(node, f"a string naming interpreter internals: {node.value[:40]!r}")


def _strip_options(code: str) -> str:
    """`%timeit -n 10 f(x)` passes "-n 10 f(x)": drop the leading options, as IPython does."""
    words = code.split(" ")
    while words and (not words[0] or words[0].startswith("-")):
        word = words.pop(0)
        if word in VALUE_OPTIONS and words:
            words.pop(0)
    return " ".join(words)


def read_cell(source: str, modules: dict[str, str] | None = None) -> list[tuple[int, str]]:
    """(line, what) for each construct of one cell's source worth a review. `modules`: the
    names earlier cells bound to modules (`np` -> `numpy`), updated with this cell's imports."""
    modules = {} if modules is None else modules
    source = source if isinstance(source, str) else str(source)
    if len(source) > CELL_CHARS:
        return [(1, f"a cell of {len(source)} characters, too long to be read here")]
    unreadable = [(1, "code this reader cannot parse (read it by hand)")]
    try:
        code = _transform(source)
        tree = _parse(code)
        if tree is None:  # a syntax error, or syntax that an earlier __future__ import allows
            return [] if not source.strip() else unreadable
        reader = _Reader()
        reader.modules = modules
        reader.visit(tree)
    except (RecursionError, MemoryError):
        return [(1, "code nested too deeply to be read here")]
    except Exception:  # noqa: BLE001 - never raise: this runs for every submission
        return unreadable
    # IPython drops the cell's leading blank lines before it runs it: count lines as written.
    lines = source.splitlines(keepends=True)
    skipped = next((i for i, ln in enumerate(lines) if ln and not ln.isspace()), 0)
    return sorted({(line + skipped, what) for line, what in reader.found})


def read_submission(cells: list[dict], run_indices: set[int] | None = None) -> list[str]:
    """The findings in the cells a learner controls (answers and cells they added), of those
    that run at grading time (`run_indices`; all when None), as "CELL, line N: WHAT" (at most
    MAX_FINDINGS, then how many more). `cells` as `grader.restore` returns them: locked and
    test cells carry the course's own source; they are read only for the modules they import
    (`import numpy as np` there makes `np.allclose = ...` in an answer a patched module)."""
    found: list[str] = []
    modules: dict[str, str] = {}
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code" or (
            run_indices is not None and index not in run_indices
        ):
            continue
        metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        nbg = metadata.get("nbgrader") if isinstance(metadata.get("nbgrader"), dict) else {}
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        findings = read_cell(source, modules)
        if nbg.get("locked") or (nbg.get("grade") and not nbg.get("solution")):
            continue  # the course's own cell
        label = str(nbg.get("grade_id") or f"cell {index + 1}")
        found += [f"{label}, line {line}: {what}" for line, what in findings]
    if len(found) > MAX_FINDINGS:
        found = [*found[:MAX_FINDINGS], f"... and {len(found) - MAX_FINDINGS} more"]
    return found
