"""Code that reaches into the learner's interpreter is named for review; honest code never is.

The framework guard and the run's input seeds live in the learner's process (README, "Known
limits"), so the grader reads every submission's own cells (`bnlab.grading.review`) and lists,
for the instructor, each construct that could undo the guard or read the seeds. A finding never
changes a score; a false one costs an instructor's time, so every honest answer we have (the
solutions, the corpus of valid variants and named mistakes, a sample of the generated valid
programs of every exercise) must produce none.
"""

from __future__ import annotations

import pytest
import variants
from corpus_tools import answer_cells, corpus_files, read_submission

from bnlab.core.course import stems
from bnlab.grading import review

# What a learner may write to blind the guard, read the seeds or patch the grader; each must be
# named (the substring after the source is part of the finding).
ATTACKS = {
    "import gc\nfor o in gc.get_objects():\n    pass": "gc",
    "from gc import get_objects as g": "gc",
    "__import__('g' + 'c')": "__import__",
    "import importlib\nimportlib.import_module('gc')": "importlib",
    "x = getattr(f, '__co' + 'de__')": "computed attribute name",
    "x = getattr(f, '__code__')": "__code__",
    "f.__code__ = g.__code__": "__code__",
    "import sys\nsys._getframe(1).f_back.f_globals": "_getframe",
    "import sys as s\ns.setprofile(None)": "setprofile",
    "from sys import settrace": "settrace",
    "import sys\nsys.modules['bnlab.checks.harness']": "sys.modules",
    "import sys\njob = sys.stdin.read()": "sys.stdin",
    "import os\nos.read(0, 100)": "os.read",
    "import torch\ntorch.library.Library('aten', 'IMPL')": "torch.library",
    "import torch\nops = torch._C._dispatch_get_all_op_names()": "torch._C",
    "from torch.utils._python_dispatch import TorchDispatchMode": "dispatch",
    "from torch.overrides import TorchFunctionMode": "torch.overrides",
    "from tensorflow.python import pywrap_tfe": "tensorflow.python",
    "import numpy as np\nnp.allclose = lambda *a, **k: True": "replaces numpy.allclose",
    # replacing the seeding function makes every later seed a no-op (calling it is honest)
    "import numpy as np\nnp.random.seed = lambda *a: None": "replaces numpy.random.seed",
    "import numpy as np\nsetattr(np, 'allclose', print)": "replaces numpy.allclose",
    "import numpy.testing as t\ndel t.assert_allclose": "replaces numpy.testing.assert_allclose",
    "from bnlab.checks import harness": "the course's grading",
    "'{0.__globals__}'.format(f)": "a string naming interpreter internals",
    "[c for c in ().__class__.__base__.__subclasses__()]": "__subclasses__",
    "(lambda: 0).__globals__['__builtins__']": "__globals__",
    "!cat /etc/passwd": "a shell command",
    "%%bash\necho hi": "%bash",
    "%timeit import gc": "gc",
    "%load_ext some_extension": "%load_ext",
    "get_ipython().events.register('pre_run_cell', print)": "get_ipython",
    "exec('x = 1')": "exec()",
    "y = eval('1')": "eval()",
    "import ctypes": "ctypes",
    "open('/proc/self/mem', 'rb')": "/proc",
    "import threading\nthreading.Thread(target=print).start()": "threads",
    "import sqlite3": "sqlite3",
    "import socket": "socket",
    "import types\ntypes.FunctionType(code, {})": "types.FunctionType",
    "def f():\n    import gc\n    return gc": "gc",  # inside a function body
    "import numpy as np\nnp.lib.stride_tricks.as_strided(a, (9,), (8,))": "as_strided",
    "from numpy.ctypeslib import as_array": "numpy.ctypeslib",
    "a = {'__array_interface__': {}}": "a string naming interpreter internals",
    "'{0.f_back}'.format(frame)": "a string naming interpreter internals",
    "from operator import attrgetter": "operator.attrgetter",
    "import traceback\nframes = traceback.walk_stack(None)": "traceback.walk_stack",
    "from functools import reduce\nreduce(getattr, names, obj)": "getattr passed as a value",
    "try:\n    1 / 0\nexcept Exception as e:\n    e.__traceback__.tb_frame": "tb_frame",
    # found by a sceptical read of the first version; each returned nothing then
    "from __future__ import barry_as_FLUFL": "__future__",
    "import gc\nprint(1 <> 2)": "cannot parse",  # valid after the import above
    "%config A.b = __import__('gc').get_objects()": "__import__",
    "code = 'import g' + 'c'\nget_ipython().run_line_magic('time', code)": "computed argument",
    "import os\nos.sys.modules['gc']": "sys.modules",
    "from os import sys\nsys.modules['gc']": "sys.modules",
    "from sys import *": "imports * from sys",
    "import sys\ns = sys": "sys module passed on",
    "import sys\nf = lambda s=sys: s": "sys module passed on",
    "import sys\n[m for m in [sys]]": "sys module passed on",
    "import os.path as p\np.os.sys.modules": "sys.modules",
    "import sys\ngetattr(sys, 'modules')": "sys.modules",
    "import sys\ngetattr(sys, 'setprofile')(None)": "sys.setprofile",
    "import torch\ngetattr(torch, 'library')": "torch.library",
    "import sys\nsys.__dict__['modules']": "namespace",
    "type.__dict__['__sub' + 'classes__'](object)": "every class",
    "import numpy as np\nnp.__dict__['allclose'] = print": "namespace",
    "match f:\n    case object(__globals__=g):\n        pass": "match pattern",
    "import pkgutil\npkgutil.resolve_name('sys:modules')": "pkgutil",
    "from unittest import mock\nmock.patch('numpy.allclose', print).start()": "unittest.mock",
    "import timeit\ntimeit.timeit('import gc')": "timeit",
    "import runpy": "runpy",
    "g = (x for x in [0])\nframe = getattr(g, 'gi_' + 'frame')": "computed attribute name",
    "import numpy as np\nt = np.testing\nt.assert_allclose = print": "replaces numpy.testing",
    "import io\nio.open(0).read()": "io.open",
    "import pathlib\npathlib.Path('/dev/stdin').read_text()": "/dev/stdin",
    "import logging\nlogging.currentframe()": "logging.currentframe",
    "import torch.multiprocessing as mp": "torch.multiprocessing",
    "class T(torch.Tensor):\n    def __torch_dispatch__(cls, f, t, a, k):\n        pass": (
        "__torch_dispatch__"
    ),
    "x = 1\n" * 60_000: "too long",
}

# The gc-based undo of the kernel block that README names as a known limit, as a learner would
# write it in the PyTorch exercise's modules cell: it must be named, whatever else it does.
UNDO_THE_BLOCK = """
import gc
import sys
import torch.nn.functional as F


class BatchNorm1d(torch.nn.Module):
    def forward(self, x):
        for obj in gc.get_objects():
            if type(obj).__name__ == "KernelBlock":
                obj.__exit__(None, None, None)
        sys.setprofile(None)
        return F.batch_norm(x, None, None, training=True)
"""


# Honest code that an earlier version named (false findings, found by the same read).
HONEST = (
    "def forward(self, input):\n    return input.mean(0)",
    "def call(self, input, open=None):\n    return input",
    "for i in range(3):\n    setattr(self, f'bn{i}', BatchNorm1d(4))",
    "layer = getattr(self, 'layer_' + str(i))",
    "import torch\ntorch.backends.cudnn.deterministic = True",
    "import os\nos.environ['KERAS_BACKEND'] = 'torch'",
    "%prun -s cumulative f(x)",
    'def f():\n    """Call the parent\'s __init__ via the __mro__."""',
    "class A(nn.Module):\n    def __setattr__(self, k, v):\n        super().__setattr__(k, v)",
    "import sys\ntype_, err, tb = sys.exc_info()",
    "%config InlineBackend.figure_format = 'retina'",
    "np.mean??",
    "import numpy as np\nnp.random.seed(0)\nrng = np.random.default_rng(0)",
)


@pytest.mark.parametrize("source", HONEST, ids=lambda s: s[:40])
def test_honest_idioms_are_not_named(source):
    assert review.read_cell(source) == []


def test_the_reader_never_raises():
    for source in (None, 5, "\x00", "\ufeffx = 1", "'\ud800'", "x" + ".y" * 30_000):
        assert isinstance(review.read_cell(source), list)
    odd = [{"cell_type": "code", "metadata": {"nbgrader": "x"}, "source": "import gc"}]
    assert review.read_submission(odd) == [
        "cell 1, line 1: imports gc: the interpreter's object lists (gc)"
    ]


@pytest.mark.parametrize("source, named", list(ATTACKS.items()), ids=lambda s: s[:40])
def test_each_way_into_the_interpreter_is_named(source, named):
    found = review.read_cell(source)
    assert any(named in what for _, what in found), found


def test_the_known_undo_of_the_kernel_block_is_named_with_its_lines():
    found = dict(review.read_cell(UNDO_THE_BLOCK))
    assert "gc" in found[2] and "sys.setprofile" in found[12], found


def test_the_finding_names_the_cell_and_line():
    cells = [
        {"cell_type": "code", "metadata": {}, "source": "x = 1\nimport gc\n"},
        {
            "cell_type": "code",
            "metadata": {"nbgrader": {"grade_id": "imports", "locked": True}},
            "source": "import gc\n",  # the course's own locked cell: never read
        },
        {
            "cell_type": "code",
            "metadata": {"nbgrader": {"grade_id": "answer", "solution": True}},
            "source": ["import numpy as np\n", "np.isclose = None\n"],
        },
        {"cell_type": "code", "metadata": {}, "source": "import ctypes\n"},  # not run
    ]
    found = review.read_submission(cells, run_indices={0, 1, 2})
    assert found == [
        "cell 1, line 2: imports gc: the interpreter's object lists (gc)",
        "answer, line 2: replaces numpy.isclose (a module's attribute)",
    ]


def test_a_module_imported_by_the_course_and_patched_in_an_answer_is_named():
    locked = {"nbgrader": {"grade_id": "imports", "locked": True}}
    cells = [
        {"cell_type": "code", "metadata": locked, "source": "import numpy as np\n"},
        {"cell_type": "code", "metadata": {}, "source": "np.allclose = lambda *a: True\n"},
    ]
    assert review.read_submission(cells) == [
        "cell 2, line 1: replaces numpy.allclose (a module's attribute)"
    ]


def test_findings_are_capped_per_submission():
    source = "".join(f"import gc as g{i}\n" for i in range(review.MAX_FINDINGS + 5))
    found = review.read_submission([{"cell_type": "code", "metadata": {}, "source": source}])
    assert len(found) == review.MAX_FINDINGS + 1
    assert found[-1] == "... and 5 more"


STEMS = stems()


@pytest.mark.parametrize("stem", STEMS)
def test_the_solutions_are_never_named(stem):
    for cell_id, source in answer_cells(stem).items():
        assert review.read_cell(source) == [], (stem, cell_id)


CHEATS = {"wrong_calls_torch"}  # corpus answers that reach torch by a computed import


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_corpus_is_named_only_where_it_cheats(path):
    cells, _ = read_submission(path)
    found = {cell_id: review.read_cell(source) for cell_id, source in cells.items()}
    if path.stem in CHEATS:
        assert any(found.values()), found
    else:
        assert not any(found.values()), found


@pytest.mark.parametrize("stem", sorted(variants.GENERATORS))
def test_generated_valid_programs_are_never_named(stem):
    for name, answers in variants.GENERATORS[stem](400):
        for cell_id, source in answers.items():
            assert review.read_cell(source) == [], (name, cell_id)
