"""A disk cache for the judges' framework computations.

References and known-mistake variants depend only on the grader's inputs (cases regenerated from
seeds), never on a learner's answer, so the grader computes each of them once per assignment and
grader version, with the real layers, and reads them back afterwards: grading a cohort then
imports no framework unless a new input appears. `bn-course release` fills the cache by judging
the instructor's solution; `bn-course grade` uses it.

The cache is active only where `BNLAB_REFERENCE_CACHE` names a folder (the grader sets it to
`<course root>/.cache/references`, which no sandbox can see); in learners' notebooks every
reference is computed afresh. Entries are keyed by the function, its arguments, the grader's
source digest and the framework versions, and written atomically.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import tempfile
from importlib import metadata
from pathlib import Path

from bnlab.core.versions import grader_version

ENV = "BNLAB_REFERENCE_CACHE"


@functools.cache
def _salt() -> bytes:
    versions = []
    for dist in ("torch", "keras", "tensorflow", "numpy"):
        try:
            versions.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist}=none")
    return f"{grader_version()};{';'.join(versions)}".encode()


def cached(fn):
    """Memoize `fn` on disk (when enabled); its arguments and result must pickle."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        folder = os.environ.get(ENV)
        if not folder:
            return fn(*args, **kwargs)
        try:
            blob = pickle.dumps((fn.__module__, fn.__qualname__, args, sorted(kwargs.items())), 4)
        except Exception:  # noqa: BLE001 - an argument that does not pickle: no caching
            return fn(*args, **kwargs)
        key = hashlib.sha256(_salt() + blob).hexdigest()
        path = Path(folder) / key[:2] / f"{key}.pkl"
        try:
            return pickle.loads(path.read_bytes())  # written by this grader only (trusted)
        except (OSError, EOFError, pickle.UnpicklingError):
            pass
        value = fn(*args, **kwargs)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            pickle.dump(value, tmp, 4)
        os.replace(tmp.name, path)
        return value

    return wrapper
