"""The GPU script runs on the CPU in dry-run mode here, so that it cannot rot before a GPU
session uses it: every section must run and report, and the SyncBatchNorm checks must be able to
fail."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO

# gpu_check spawns its SyncBatchNorm ranks: they import it by name, so bench/ must be on the path
# (the spawned processes inherit sys.path).
sys.path.append(str(REPO / "bench"))
import gpu_check  # noqa: E402

DTYPES = ("float32", "float16")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> str:
    report = tmp_path_factory.mktemp("gpu_check") / "report.md"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--dry-run", "--report", report],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # --report writes the section that a GPU run appends to bench/RESULTS.md
    assert report.read_text().startswith("## dry run on the CPU")
    assert report.read_text().strip() in proc.stdout
    return proc.stdout


def section(report: str, number: int) -> str:
    """The text of report section `### <number>.` up to the next section."""
    match = re.search(rf"^### {number}\. .*?(?=^### |\Z)", report, re.S | re.M)
    assert match, f"section {number} missing from the report"
    return match.group(0)


def test_dry_run_reports_every_check_passed_within_its_budget(dry_run):
    assert "## dry run on the CPU (`bench/gpu_check.py`)" in dry_run
    assert re.search(r"^Wall time \d+ s \(budget 110 s\)\.$", dry_run, re.M)
    assert "Every check passed." in dry_run
    assert "skipped: time budget spent" not in dry_run
    assert "FAILED" not in dry_run and "MISMATCH" not in dry_run


def test_dry_run_correctness_section(dry_run):
    text = section(dry_run, 1)
    for layer in ("BatchNorm2d", "BatchNorm1d"):
        assert re.search(
            rf"^- {layer} on cpu: max \|difference\| to torch \S+ \(ok\)$", text, re.M
        )


def test_dry_run_times_every_variant_dtype_and_layout(dry_run):
    text = section(dry_run, 2)
    assert "| forward GB/s (% of peak, % of copy) | fwd+bwd GB/s (% of peak, % of copy) |" in text
    assert re.search(r"^- Copy bandwidth: [\d.]+ GB/s \(`dst.copy_\(src\)`", text, re.M)
    assert "- Peak bandwidth: peak unknown." in text
    number = r"\d+\.\d+"
    bandwidth = r"[\d.]+ \(—, \d+ %\)"  # CPU: no peak, a share of the copy bandwidth
    for variant in gpu_check.VARIANTS:
        for dtype in DTYPES:
            for layout in gpu_check.LAYOUTS:
                row = (
                    rf"^\| {re.escape(variant)} \| {dtype} \| {layout} \| (?P<how>[^|]+) "
                    rf"\| {number} \| {number} \| {bandwidth} \| {bandwidth} \| {number} "
                    r"\| \S+ / \S+ \|$"
                )
                match = re.search(row, text, re.M)
                assert match, f"no complete timing row for {variant}, {dtype}, {layout}"
                how = match.group("how")
                if "torch.compile" in variant:
                    # inductor where the dry run affords it, the rest through Dynamo/AOTAutograd
                    backend = "inductor" if (dtype, layout) == ("float32", "NCHW") else "aot_eager"
                    assert how.startswith(f"{backend}, "), how
                elif variant == gpu_check.TORCH_BN:
                    assert how == "native CPU kernels", how


def test_dry_run_torch_sync_batchnorm_section(dry_run):
    text = section(dry_run, 3)
    assert "- nn.SyncBatchNorm, nccl, 2 processes on cuda:0 and cuda:1: skipped: 0 GPUs" in text
    assert "- nn.SyncBatchNorm, gloo, 2 processes both on cpu, global batch 8 split 3 + 5:" in text
    for dtype, _ in gpu_check.SYNC_CASES:
        assert re.search(
            rf"^  - {dtype}: does not run \(nn.SyncBatchNorm takes GPU tensors only\): "
            "ValueError: SyncBatchNorm expected input tensor to be on GPU",
            text,
            re.M,
        )


def test_dry_run_solution_sync_batchnorm_section(dry_run):
    text = section(dry_run, 4)
    if not gpu_check.SYNC_SOLUTION.exists():
        assert "- solution SyncBatchNorm: skipped: no solutions/10_batchnorm_at_scale.py" in text
        return
    assert (
        "- solution SyncBatchNorm (solutions/10_batchnorm_at_scale.py), gloo, 2 processes both "
        "on cpu, global batch 8 split 3 + 5:" in text
    )
    for dtype, tolerance in gpu_check.SYNC_CASES:
        line = (
            rf"^  - {dtype}: .*output \S+, input grad \S+, parameter grads summed over ranks "
            rf"\S+, running statistics \S+, eval output \S+; worst \S+, tolerance {tolerance:g} "
            r"\(ok\)$"
        )
        assert re.search(line, text, re.M), dtype


@pytest.mark.parametrize(
    ("card", "gbps"),
    [
        ("NVIDIA H200", 4800),
        ("NVIDIA H200 NVL", 4800),
        ("NVIDIA H100 80GB HBM3", 3350),
        ("NVIDIA H100 SXM5 80GB", 3350),
        ("NVIDIA H100 PCIe", 2000),
        ("NVIDIA A100-SXM4-80GB", 2039),
        ("NVIDIA A100 80GB PCIe", 1935),
        ("NVIDIA A100-SXM4-40GB", 1555),
        ("NVIDIA A100-PCIE-40GB", 1555),
        ("Tesla V100-SXM2-16GB", 900),
        ("Tesla V100S-PCIE-32GB", 1134),
        ("Tesla T4", 320),
        ("NVIDIA L4", 300),
        ("NVIDIA L40S", None),
        ("NVIDIA H100 NVL", None),
        ("NVIDIA GH200 480GB", None),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_peak_bandwidth_by_card_name(card, gbps):
    peak, what = gpu_check.peak_bandwidth(card)
    assert peak == gbps
    assert (what == "peak unknown") == (gbps is None)


@pytest.mark.parametrize("path", sorted((REPO / "solutions").glob("*.py")), ids=lambda p: p.stem)
def test_solution_cells_are_those_jupytext_reads(path):
    import jupytext

    expected = []
    for cell in jupytext.read(path).cells:
        meta = cell.metadata.get("nbgrader", {})
        answer = meta.get("grade_id") == "imports" or meta.get("solution")
        if cell.cell_type == "code" and answer:
            expected.append((meta.get("grade_id", ""), cell.source.strip()))
    got = [(grade_id, source.strip()) for grade_id, source in gpu_check.solution_cells(path)]
    assert got == expected


def test_solutions_load_without_jupytext_nbformat_or_tensorflow():
    """The lent GPU machine's Python has torch and numpy, none of these."""
    code = f"""
import sys
for name in ("jupytext", "nbformat", "nbclient", "tensorflow", "keras"):
    sys.modules[name] = None  # import fails
sys.path.append({str(REPO / "bench")!r})
import gpu_check

assert "BatchNorm2d" in gpu_check.solution_layers()
if gpu_check.SYNC_SOLUTION.exists():
    assert "SyncBatchNorm" in gpu_check.load_solution(gpu_check.SYNC_SOLUTION)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


HEADER = '# %% nbgrader={{"grade": false, "grade_id": "{id}", "locked": {locked}, "schema_version": 3, "solution": {solution}, "task": false}}'  # noqa: E501
IMPORTS = HEADER.format(id="imports", locked="true", solution="false")
ANSWER = HEADER.format(id="SyncBatchNorm", locked="false", solution="true")
# Only the imports cell and answer cells run: this one would stop the check.
NOT_AN_ANSWER = '# %%\nraise RuntimeError("a cell that is not an answer ran")\n'
SIGNATURE = """
class SyncBatchNorm(nn.BatchNorm2d):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
"""
# Per-rank statistics: what a plain BatchNorm2d in each process computes.
LOCAL = SIGNATURE
# Global statistics through the differentiable all_reduce; parameter gradients stay local.
GLOBAL = (
    SIGNATURE
    + """
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c, shape = x.shape[1], (1, -1, 1, 1)
        count = torch.full((1,), x.numel() // c, dtype=x.dtype, device=x.device)
        stats = all_reduce(torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), count]))
        n = stats[2 * c]
        mean = stats[:c] / n
        var = stats[c : 2 * c] / n - mean * mean
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)
        x_hat = (x - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        return x_hat * self.weight.view(shape) + self.bias.view(shape)
"""
)


def fake_solution(tmp_path, body: str):
    path = tmp_path / "10_fake.py"
    path.write_text(
        f"{IMPORTS}\nimport torch\nfrom torch import nn\n\n{NOT_AN_ANSWER}\n{ANSWER}\n{body}"
    )
    return path


def test_sync_solution_skipped_without_the_file(tmp_path):
    torch = gpu_check.import_torch()
    lines = gpu_check.sync_solution_on(torch.device("cpu"), path=tmp_path / "missing.py")
    assert lines == [f"solution SyncBatchNorm: skipped: no {tmp_path / 'missing.py'}"]


def test_sync_solution_catches_per_rank_statistics(tmp_path):
    torch = gpu_check.import_torch()
    lines = gpu_check.sync_solution_on(torch.device("cpu"), path=fake_solution(tmp_path, LOCAL))
    assert gpu_check.failed(lines), lines
    for dtype, _ in gpu_check.SYNC_CASES:
        line = next(line for line in lines if line.startswith(f"  - {dtype}: "))
        assert line.endswith("(MISMATCH)"), line
        assert float(re.search(r"output (\S+),", line).group(1)) > 1e-2, line


def test_sync_solution_passes_a_correct_layer(tmp_path):
    torch = gpu_check.import_torch()
    lines = gpu_check.sync_solution_on(torch.device("cpu"), path=fake_solution(tmp_path, GLOBAL))
    assert not gpu_check.failed(lines), lines
    assert [line.rsplit(" ", 1)[-1] for line in lines[1:]] == ["(ok)"] * len(gpu_check.SYNC_CASES)


def test_time_guard_stops_a_step_at_the_hard_limit_and_restores_the_handler():
    import signal
    import time

    before = signal.getsignal(signal.SIGALRM)
    guard = gpu_check.TimeGuard(budget_s=0.05, hard_grace_s=0.05)
    guard.arm()
    try:
        with pytest.raises(gpu_check.TimeGuardExpired):
            time.sleep(5)
        assert guard.left() < 0
    finally:
        guard.disarm()
    assert signal.getsignal(signal.SIGALRM) is before
