"""Data for the course, all local: sklearn's 8x8 digits (shipped in its wheel) and a reader of
MNIST-style IDX files for learners who have MNIST on disk. Nothing is ever downloaded."""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(test_fraction: float = 0.25, seed: int = 0, images: bool = True) -> Split:
    """sklearn's digits as float32 in [0, 1]: (N, 1, 8, 8) images or (N, 64) vectors."""
    from sklearn.datasets import load_digits as sk_digits

    data = sk_digits()
    x = (data.images / 16.0).astype(np.float32)
    x = x[:, None] if images else x.reshape(len(x), -1)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return Split(x[train], y[train], x[test], y[test])


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), plain or gzip-compressed.

    Raises ValueError naming the file and what is wrong with it.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number); expected MNIST's format")
    dtype, ndim = raw[2], raw[3]
    if dtype not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{dtype:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    item = np.dtype(_IDX_TYPES[dtype])
    expected = int(np.prod(shape, dtype=np.int64)) * item.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: holds {len(raw) - header} bytes of data, its header "
            f"announces {expected} (shape {shape}); the file is truncated or corrupt"
        )
    return (
        np.frombuffer(raw, dtype=item, offset=header).reshape(shape).astype(item.newbyteorder("="))
    )


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an array as IDX (used by the tests to make small MNIST-style files)."""
    codes = {
        np.dtype(np.uint8): 0x08,
        np.dtype(np.int8): 0x09,
        np.dtype(np.int16): 0x0B,
        np.dtype(np.int32): 0x0C,
        np.dtype(np.float32): 0x0D,
        np.dtype(np.float64): 0x0E,
    }
    array = np.asarray(array)
    code = codes[array.dtype]
    body = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    body += array.astype(np.dtype(_IDX_TYPES[code]).newbyteorder(">")).tobytes()
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(body)


def load_mnist(folder: str | Path, kind: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST from local IDX files (e.g. train-images-idx3-ubyte.gz): images in [0, 1], labels."""
    folder = Path(folder)
    prefix = "train" if kind == "train" else "t10k"
    found = {}
    for part in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        candidates = [folder / f"{prefix}-{part}{ext}" for ext in (".gz", "")]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            raise FileNotFoundError(f"{candidates[0]} (or without .gz) not found in {folder}")
        found[part] = read_idx(path)
    images, labels = found["images-idx3-ubyte"], found["labels-idx1-ubyte"]
    if len(images) != len(labels):
        raise ValueError(f"{folder}: {len(images)} images but {len(labels)} labels")
    return (images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64)
