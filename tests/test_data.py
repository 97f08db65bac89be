"""bnlab.book.data: sklearn's digits, and MNIST-style IDX files made here (nothing is
downloaded)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from bnlab.book import data


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    data.write_idx(path, array)
    back = data.read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_reads_mnist_bytes_written_by_hand(tmp_path):
    """The layout of MNIST's own files: magic 0x00000803, big-endian sizes, then the pixels."""
    pixels = bytes(range(2 * 3 * 3))
    raw = struct.pack(">IIII", 0x0803, 2, 3, 3) + pixels
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(raw)
    got = data.read_idx(path)
    assert got.shape == (2, 3, 3) and got.dtype == np.uint8
    assert got[1, 2, 2] == 17 and got[0, 0, 1] == 1


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad magic number"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown IDX element type 0x07"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 1), "truncated IDX header"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00\x01", "truncated or corrupt"),
    ],
)
def test_broken_files_are_named_with_the_problem(tmp_path, raw, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=message) as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def _mnist_folder(folder, n_train=6, n_test=4, labels_train=None):
    rng = np.random.default_rng(1)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        if prefix == "train" and labels_train is not None:
            labels = labels[:labels_train]
        data.write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        data.write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)


def test_load_mnist_from_local_files(tmp_path):
    _mnist_folder(tmp_path)
    x, y = data.load_mnist(tmp_path, "train")
    assert x.shape == (6, 1, 28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert y.shape == (6,) and y.dtype == np.int64
    x_test, _ = data.load_mnist(tmp_path, "test")
    assert x_test.shape == (4, 1, 28, 28)


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        data.load_mnist(tmp_path)
    _mnist_folder(tmp_path, labels_train=5)
    with pytest.raises(ValueError, match="6 images but 5 labels"):
        data.load_mnist(tmp_path)


def test_load_digits_split():
    split = data.load_digits(test_fraction=0.25, seed=0)
    n = len(split.x_train) + len(split.x_test)
    assert n == 1797 and len(split.x_test) == round(0.25 * 1797)
    assert split.x_train.shape[1:] == (1, 8, 8) and split.x_train.dtype == np.float32
    assert 0.0 <= split.x_train.min() and split.x_train.max() <= 1.0
    flat = data.load_digits(images=False, seed=0)
    assert flat.x_train.shape[1] == 64
    np.testing.assert_array_equal(flat.y_test, split.y_test)
