"""Shipped reference values: canonical keys, and a zip of JSON plus .npy files to hold them.

A learner who installs `bnlab` without the frameworks (`pip install "bnlab[learner]"`) still runs
the visible checks of the NumPy exercises: the framework references those checks need are
computed once by `bn-course references --write` with the real torch and Keras and shipped in
`bnlab/checks/data/visible_references.zip`. `bnlab.core.refcache.cached` reads them back when
torch or Keras cannot be imported.

A key is the SHA-256 of the function's qualified name and its bound arguments, written
canonically: arrays by dtype (little-endian), shape and bytes, dataclasses field by field,
floats by their exact hexadecimal form. Framework versions are not part of it. Values are
stored as data only, never pickles: a JSON index (structure, strings, floats in hexadecimal,
each array as dtype, shape and offset) and one blob of array bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

FORMAT = 1
INDEX = "index.json"
BLOB = "arrays.bin"  # every array's bytes, little-endian, one after the other
_PREFIX = b"bnlab-reference/1\0"


# ----------------------------------------------------------------------------- keys
def _array(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    if a.dtype.hasobject:
        raise TypeError("object arrays have no canonical form")
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return a


def _feed(out: list[bytes], obj) -> None:
    """Append an unambiguous (length-prefixed, type-tagged) encoding of `obj` to `out`."""

    def blob(tag: bytes, data: bytes) -> None:
        out.append(tag + len(data).to_bytes(8, "little") + data)

    if obj is None:
        out.append(b"N")
    elif isinstance(obj, bool | np.bool_):
        out.append(b"B1" if obj else b"B0")
    elif isinstance(obj, np.ndarray | np.generic):
        a = _array(np.asarray(obj))
        blob(b"A", f"{a.dtype.str}{a.shape}".encode())
        blob(b"a", a.tobytes())
    elif isinstance(obj, int):
        blob(b"I", str(obj).encode())
    elif isinstance(obj, float):
        blob(b"F", obj.hex().encode())
    elif isinstance(obj, str):
        blob(b"S", obj.encode())
    elif isinstance(obj, bytes):
        blob(b"Y", obj)
    elif isinstance(obj, tuple | list):
        blob(b"T" if isinstance(obj, tuple) else b"L", str(len(obj)).encode())
        for item in obj:
            _feed(out, item)
    elif isinstance(obj, dict):
        blob(b"D", str(len(obj)).encode())
        for k, v in obj.items():
            _feed(out, k)
            _feed(out, v)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        blob(b"C", f"{type(obj).__module__}.{type(obj).__qualname__}".encode())
        for f in dataclasses.fields(obj):
            blob(b"f", f.name.encode())
            _feed(out, getattr(obj, f.name))
    else:
        raise TypeError(f"no canonical form for {type(obj).__name__}")


def key(name: str, arguments: list[tuple[str, object]]) -> str:
    """The table key of a call: `name` is module.qualname, `arguments` the bound arguments in
    signature order, defaults applied. Raises TypeError for an argument without a canonical
    form."""
    out: list[bytes] = [_PREFIX, name.encode(), b"\0"]
    _feed(out, [(k, v) for k, v in arguments])
    return hashlib.sha256(b"".join(out)).hexdigest()


def _short(obj) -> str:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        label = getattr(obj, "name", "")
        return f"{type(obj).__name__}({label!r})"
    if isinstance(obj, np.ndarray):
        return f"array{obj.shape}"
    if isinstance(obj, dict):
        return "{...}"
    text = repr(obj)
    return text if len(text) <= 40 else text[:37] + "..."


def describe(name: str, arguments: list[tuple[str, object]]) -> str:
    """A human-readable label of a call, for reports (not part of the key)."""
    return f"{name}({', '.join(f'{k}={_short(v)}' for k, v in arguments)})"


# ----------------------------------------------------------------------------- values
class _Encoder:
    """Values to JSON; arrays appended to one blob (deduplicated), referred to as
    [dtype, shape, offset]."""

    def __init__(self):
        self.blob = bytearray()
        self.seen: dict[bytes, int] = {}

    def __call__(self, value):
        if value is None:
            return {"n": 0}
        if isinstance(value, bool):
            return {"b": value}
        if isinstance(value, np.ndarray | np.generic):
            a = _array(np.asarray(value))
            if a.dtype.kind not in "biufc":
                raise TypeError(f"cannot store an array of dtype {a.dtype}")
            data = a.tobytes()
            ident = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + data).digest()
            if ident not in self.seen:
                self.seen[ident] = len(self.blob)
                self.blob += data
            ref = [a.dtype.str, list(a.shape), self.seen[ident]]
            return {"g" if isinstance(value, np.generic) else "a": ref}
        if isinstance(value, int):
            return {"i": value}
        if isinstance(value, float):
            return {"f": value.hex()}
        if isinstance(value, str):
            return {"s": value}
        if isinstance(value, tuple):
            return {"t": [self(v) for v in value]}
        if isinstance(value, list):
            return {"l": [self(v) for v in value]}
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError("only dicts with str keys are stored")
            return {"d": [[k, self(v)] for k, v in value.items()]}  # order kept
        raise TypeError(f"cannot store a {type(value).__name__}")


def _decode(enc, read_array):
    ((tag, body),) = enc.items()
    if tag == "n":
        return None
    if tag in ("b", "i", "s"):
        return body
    if tag == "f":
        return float.fromhex(body)
    if tag == "a":
        return read_array(*body)
    if tag == "g":
        return read_array(*body)[()]
    if tag == "t":
        return tuple(_decode(v, read_array) for v in body)
    if tag == "l":
        return [_decode(v, read_array) for v in body]
    if tag == "d":
        return {k: _decode(v, read_array) for k, v in body}
    raise ValueError(f"unknown tag {tag!r}")


def write(path: Path, entries: dict[str, tuple[str, object]], meta: dict) -> None:
    """Write {key: (label, value)} to `path`: the same content gives the same bytes."""
    encode = _Encoder()
    index = {
        "format": FORMAT,
        "meta": meta,
        "entries": {
            k: {"call": label, "value": encode(value)}
            for k, (label, value) in sorted(entries.items())
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        members = {INDEX: json.dumps(index, indent=1, sort_keys=True).encode(), BLOB: encode.blob}
        for member, data in members.items():
            info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, bytes(data), compresslevel=9)
    tmp.replace(path)


class Table:
    """A shipped table, read once; `get` returns a fresh copy of a value (or raises KeyError)."""

    def __init__(self, path: Path):
        self.path = path
        with zipfile.ZipFile(path) as zf:
            index = json.loads(zf.read(INDEX))
            self._blob = zf.read(BLOB)
        if index.get("format") != FORMAT:
            raise ValueError(f"{path}: format {index.get('format')!r}, expected {FORMAT}")
        self.meta: dict = index["meta"]
        self.entries: dict[str, dict] = index["entries"]

    def _read_array(self, dtype: str, shape: list, offset: int) -> np.ndarray:
        dt = np.dtype(dtype)
        if dt.hasobject:
            raise ValueError("object arrays are never stored")
        count = int(np.prod(shape, dtype=np.int64))
        a = np.frombuffer(self._blob, dtype=dt, count=count, offset=offset)
        return a.reshape(shape).copy()

    def __contains__(self, k: str) -> bool:
        return k in self.entries

    def get(self, k: str):
        return _decode(self.entries[k]["value"], self._read_array)

    def items(self):
        for k, entry in self.entries.items():
            yield k, entry["call"], self.get(k)


# ----------------------------------------------------------------------------- comparison
def difference(got, want, rtol: float = 1e-10) -> str | None:
    """None when `got` equals `want` (structure, strings and dtypes exactly; numbers bitwise or
    within `rtol` of the largest magnitude, the roundoff of another CPU's kernels), else why."""
    if type(got) is not type(want) and not (
        isinstance(got, np.ndarray | np.generic) and isinstance(want, np.ndarray | np.generic)
    ):
        return f"type {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dict):
        if list(got) != list(want):
            return f"keys {list(got)} != {list(want)}"
        for k in want:
            why = difference(got[k], want[k], rtol)
            if why:
                return f"[{k!r}]: {why}"
        return None
    if isinstance(want, tuple | list):
        if len(got) != len(want):
            return f"length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            why = difference(g, w, rtol)
            if why:
                return f"[{i}]: {why}"
        return None
    if isinstance(want, np.ndarray | np.generic):
        g, w = np.asarray(got), np.asarray(want)
        if g.dtype != w.dtype or g.shape != w.shape:
            return f"{g.dtype}{g.shape} != {w.dtype}{w.shape}"
        if np.array_equal(g, w, equal_nan=w.dtype.kind in "fc"):
            return None
        if w.dtype.kind not in "fc":
            return "values differ"
        scale = float(np.nanmax(np.abs(w))) if w.size else 0.0
        if np.array_equal(np.isnan(g), np.isnan(w)) and np.allclose(
            g, w, rtol=0.0, atol=rtol * max(scale, 1e-300), equal_nan=True
        ):
            return None
        return f"max |difference| {float(np.nanmax(np.abs(g - w))):.3g} (scale {scale:.3g})"
    if isinstance(want, float):
        if got == want or abs(got - want) <= rtol * max(abs(want), 1e-300):
            return None
        return f"{got!r} != {want!r}"
    return None if got == want else f"{got!r} != {want!r}"
