"""Numerical gradients for checking a backward pass by hand (central differences)."""

from __future__ import annotations

import numpy as np


def numerical_gradient(f, x: np.ndarray, dout: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Gradient of sum(f(x) * dout) with respect to x, one entry at a time.

    f takes x (modified in place and restored) and returns an array shaped like dout.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.array(f(x), dtype=np.float64, copy=True)
        x[i] = old - h
        minus = np.array(f(x), dtype=np.float64, copy=True)
        x[i] = old
        grad[i] = np.sum((plus - minus) * dout) / (2 * h)
        it.iternext()
    return grad


def rel_error(a, b) -> float:
    """max |a - b| / max(|a| + |b|): about 1e-7 or less for a correct float64 gradient."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
