"""Importing a library without an optional dependency it would load but that we never use."""

from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def absent_during(*names: str):
    """Inside the block, an import of any of `names` that is not loaded yet raises ImportError.

    For libraries that import an optional dependency inside ``try: import X except ImportError``
    at their own import time and cost us that import for a feature we never call: jsonschema
    building rfc3987_syntax's IRI grammar (0.9 s) for a string format nothing here checks, Keras
    importing scikit-learn (0.7 s) for its scikit-learn wrappers. The library then behaves as
    where the dependency is not installed. The marks are removed after the block, so a later
    import of the dependency itself, by anyone, loads it as usual; only the library imported in
    the block keeps its "not installed" view of it.
    """
    marked = [name for name in names if name not in sys.modules]
    for name in marked:
        sys.modules[name] = None  # the import system raises ImportError for a None entry
    try:
        yield
    finally:
        for name in marked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
