"""Every probe records learner state as a copy taken at that moment (issue: in-place updates).

Learner code may keep what it returned or exposed and change it in place later, as PyTorch
itself does (`running_mean.mul_(1 - m).add_(m * mean)`). The test below drives each check with
the instructor's solution wrapped so that every array, tensor and variable the learner side hands
out (return values, attributes read, items of returned tuples, dicts and objects) is remembered;
after the probe has finished, all of them are overwritten with NaN, and the judge must still give
full marks. A probe that kept any learner value by reference would hand the judge NaN.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest
from corpus_tools import answer_cells, notebook_with

from bnlab import checks
from bnlab.checks import harness, running, sync_layers


class Handed:
    """Everything array-like the learner side handed out during a probe."""

    def __init__(self):
        self.items: list = []
        self._seen: set[int] = set()

    def add(self, value, depth: int = 0):
        if depth > 4 or id(value) in self._seen:
            return
        top = type(value).__module__.split(".", 1)[0]
        if isinstance(value, np.ndarray) or (
            top in ("torch", "tensorflow", "keras") and hasattr(value, "shape")
        ):
            self._seen.add(id(value))
            self.items.append(value)
        elif isinstance(value, (tuple, list)):
            for v in value:
                self.add(v, depth + 1)
        elif isinstance(value, dict):
            for v in value.values():
                self.add(v, depth + 1)
        elif hasattr(value, "__dict__") and type(value).__module__ in ("__main__", "builtins"):
            self._seen.add(id(value))
            for v in vars(value).values():
                self.add(v, depth + 1)

    def poison(self) -> int:
        """Overwrite every remembered value in place; the number overwritten."""
        done = 0
        for v in self.items:
            top = type(v).__module__.split(".", 1)[0]
            try:
                if isinstance(v, np.ndarray):
                    if v.flags.writeable and v.size:
                        v[...] = np.nan if np.issubdtype(v.dtype, np.floating) else -7
                        done += 1
                elif top == "torch":
                    import torch

                    with torch.no_grad():
                        v.data.fill_(float("nan") if v.is_floating_point() else -7)
                    done += 1
                elif hasattr(v, "assign"):  # a Keras / TensorFlow variable
                    v.assign(np.full(tuple(v.shape), np.nan, dtype=str(v.dtype)))
                    done += 1
            except Exception:  # noqa: BLE001 - a read-only or foreign value: left as it is
                pass
        return done


def _wrap_callable(fn, handed: Handed):
    @functools.wraps(fn)  # Keras reads the signatures of build() and call()
    def wrapper(*args, **kwargs):
        result = fn(*args, **kwargs)
        handed.add(result)
        return result

    return wrapper


def tracked(obj, handed: Handed):
    """The learner's function or class, remembering everything it hands out."""
    if not inspect.isclass(obj):
        return _wrap_callable(obj, handed)
    if hasattr(obj, "apply") and hasattr(obj, "backward") and not hasattr(obj, "parameters"):

        class Function(obj):  # torch.autograd.Function: .apply is what the probe calls
            @classmethod
            def apply(cls, *args, **kwargs):
                result = super().apply(*args, **kwargs)
                handed.add(result)
                return result

        return Function

    class Tracked(obj):
        def __getattribute__(self, name):
            value = super().__getattribute__(name)
            if name.startswith("__"):
                return value
            if inspect.ismethod(value):
                return _wrap_callable(value, handed)
            handed.add(value)
            return value

        def __getattr__(self, name):  # nn.Module's parameters and buffers
            value = super().__getattr__(name)
            handed.add(value)
            return value

    Tracked.__name__ = Tracked.__qualname__ = obj.__name__
    return Tracked


_NAMESPACES: dict[str, dict] = {}


def learner_namespace(stem: str) -> dict:
    """The solution's imports and answer cells, executed once per assignment."""
    if stem not in _NAMESPACES:
        ns: dict = {"__name__": "__main__"}
        answers = answer_cells(stem)
        for cell in notebook_with(stem, {}).cells:
            if cell["id"] == "imports" or cell["id"] in answers:
                exec(compile(cell.source, f"<{stem}:{cell['id']}>", "exec"), ns)
        _NAMESPACES[stem] = ns
    return _NAMESPACES[stem]


def _poisoning_ranks(handed: Handed):
    """run_ranks for the synchronized-BN checks, whose learner code runs in forked ranks: each
    rank poisons what its learner side handed out once its probe is done, before the probe's
    arrays are sent, and reports how many values it saw and poisoned."""
    real = sync_layers.run_ranks

    def run(work, *args, **kwargs):
        def work_then_poison(rank, world_size):
            pr = work(rank, world_size)
            pr.arrays["poison.poisoned"] = np.asarray(handed.poison())
            pr.arrays["poison.items"] = np.asarray(len(handed.items))
            return pr

        return real(work_then_poison, *args, **kwargs)

    return run


def probe_then_poison(check_id: str, seed: int = 0) -> tuple[harness.Verdict, Handed]:
    spec = checks.CHECKS[check_id]
    ns = learner_namespace(spec.stem)
    handed = Handed()
    learner = [tracked(ns[name], handed) for name in spec.names]
    if spec.module is sync_layers:
        real = sync_layers.run_ranks
        sync_layers.run_ranks = _poisoning_ranks(handed)
        try:
            probe = spec.module.probe(*learner, spec.module.cases(spec.prop, seed))
        finally:
            sync_layers.run_ranks = real
        counts = {k: int(probe.arrays.pop(k)) for k in list(probe.arrays) if ".poison." in k}
        handed.items = [None] * min(v for k, v in counts.items() if k.endswith("items"))
        handed.poisoned = min(v for k, v in counts.items() if k.endswith("poisoned"))
        verdict = spec.module.judge(
            spec.prop, spec.module.cases(spec.prop, seed), probe, spec.what
        )
        return verdict, handed
    probe = spec.module.probe(*learner, spec.module.cases(spec.prop, seed))
    handed.poisoned = handed.poison()
    # Fresh cases for the judge: the poison may have reached inputs the learner kept.
    verdict = spec.module.judge(spec.prop, spec.module.cases(spec.prop, seed), probe, spec.what)
    return verdict, handed


@pytest.mark.parametrize("check_id", sorted(checks.CHECKS))
def test_probe_keeps_a_copy_of_everything_it_records(check_id):
    verdict, handed = probe_then_poison(check_id)
    assert handed.items, "the wrapper saw nothing the learner handed out"
    # Immutable values (TensorFlow's eager tensors) cannot change later; everything else did.
    assert handed.poisoned > 0 or check_id == "keras.custom_gradient"
    assert verdict.passed, verdict.message


def test_the_poison_test_catches_a_probe_that_keeps_references(monkeypatch):
    """Without the copy (as the probe was before), the same test fails."""

    def by_reference(value, dtype=None):
        return value if isinstance(value, np.ndarray) else np.asarray(value, dtype)

    monkeypatch.setattr(running, "snapshot", by_reference)
    verdict, _ = probe_then_poison("running.init")
    assert not verdict.passed


def test_snapshot_is_a_detached_copy():
    a = np.arange(6.0).reshape(2, 3)
    for value in (a, a.T, a[:, 1], np.broadcast_to(a[0], (4, 3))):
        s = harness.snapshot(value)
        assert type(s) is np.ndarray and s.flags.c_contiguous
        assert not np.shares_memory(s, a)
    assert harness.snapshot(a, np.float32).dtype == np.float32
    assert harness.snapshot([[1, 2], [3, 4]]).shape == (2, 2)
    assert harness.snapshot(object()) is None
    torch = pytest.importorskip("torch")
    t = torch.ones(3, requires_grad=True) * 2
    s = harness.snapshot(t)
    with torch.no_grad():
        t.fill_(5)
    assert s.tolist() == [2.0, 2.0, 2.0]
    assert harness.snapshot(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32


def test_the_poison_test_reaches_into_the_ranks(monkeypatch):
    """The synchronized-BN probe runs learner code in forked ranks: there too, a probe that
    kept references instead of copies would hand the judge the poisoned values."""

    def by_reference(value, dtype=None):
        return value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)

    monkeypatch.setattr(sync_layers, "snapshot", by_reference)
    verdict, handed = probe_then_poison("sync.running")
    assert handed.poisoned > 0 and not verdict.passed
