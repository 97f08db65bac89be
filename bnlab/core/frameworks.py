"""Quiet, device-aware access to PyTorch and Keras.

TensorFlow writes C++ log lines straight to file descriptor 2 while it imports and on its first
operations. nbgrader scores any stderr output in a test cell as a failure, and Jupyter Book would
print it into the page, so framework imports go through :func:`quiet_stderr`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading

from bnlab.core.imports import absent_during

# Must be set before TensorFlow is imported anywhere in the process.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# fd 2 is shared by the whole process: grading threads take turns (re-entrant for nesting).
_STDERR_LOCK = threading.RLock()


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (C++ and Python writes alike) inside the block.

    If the block raises, what was written is replayed so that the error keeps its context.
    """
    with _STDERR_LOCK, _silenced():
        yield


@contextlib.contextmanager
def _silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            os.write(2, sink.read()[-4000:])
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def import_torch():
    """Return the ``torch`` module, imported without log noise."""
    with quiet_stderr():
        import torch
    return torch


def import_keras():
    """Return the ``keras`` module (Keras 3 on the TensorFlow backend), imported quietly.

    Imported here for the first time, Keras is imported without scikit-learn, which it would
    otherwise load (0.7 s of its 3.5 s) only for its scikit-learn wrappers: the course never uses
    them, and there they say scikit-learn is not installed. Import ``keras`` yourself before
    calling this if you need them; ``import sklearn`` works as usual either way.
    """
    with quiet_stderr(), absent_during("sklearn"):
        import keras
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    return keras


def torch_device():
    """``torch.device('cuda')`` when a CUDA GPU is visible, else the CPU."""
    torch = import_torch()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
