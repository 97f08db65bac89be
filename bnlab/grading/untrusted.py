"""Reading what learner code could have written: the sandbox's /out and the submission folder.

Everything in /out is attacker-controlled (learner code runs with write access to it, and can
leave a thread or an `atexit` hook behind that rewrites the runner's files), and so is every file
of a submission. The grader reads them only through these functions:

* `read_bytes` opens with O_NOFOLLOW | O_NONBLOCK, requires a regular file (no symlink to
  /dev/zero or to a host file the sandbox could not see, no FIFO that would block the cohort run)
  and reads at most `limit` bytes;
* `read_json` adds a depth guard and replaces lone surrogates and other unencodable text;
* `load_probe` inspects an npz before loading it: the member count, every member's declared
  size, dtype and shape (read from its header, checked against the member's size), and the total,
  so a decompression bomb or 40,000 empty members cost nothing;
* `clean` makes any learner-originated text safe to write as UTF-8;
* `safe_markdown` leaves a learner's markdown with no live HTML (scripts, event handlers,
  iframes, forms, javascript: links), as the feedback page and the formgrader render it.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import re
import shutil
import stat
import urllib.parse
import zipfile
from pathlib import Path

import numpy as np

from bnlab.checks.harness import Probe

JSON_LIMIT = 2_000_000  # bytes of one JSON file from /out
NPZ_LIMIT = 32 * 2**20  # bytes of one probe's arrays.npz, compressed
ARRAYS_LIMIT = 64 * 2**20  # bytes of one probe's arrays, uncompressed, all members
MAX_MEMBERS = 512  # arrays in one probe (the largest check records fewer than 100)
MAX_ERRORS = 64  # error entries and framework calls kept from one probe
TEXT_LIMIT = 2000  # characters of one learner-originated message


class Untrusted(ValueError):
    """A file from the sandbox or a submission that the grader refuses to read."""


def is_regular(path: Path) -> bool:
    """True for a regular file that is not a symlink (lstat: never follows)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def unlink_links(root: Path, limit: int = 100_000) -> int:
    """Remove every symbolic link under `root` (never following one), so that no folder on the
    way to a file read later can lead outside it. Returns how many were removed; past `limit`
    entries the rest of the tree is removed unread."""
    removed, seen = 0, 0
    for top, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            seen += 1
            path = os.path.join(top, name)
            if os.path.islink(path):
                os.unlink(path)
                removed += 1
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]
        if seen > limit:
            for d in dirs:
                shutil.rmtree(os.path.join(top, d), ignore_errors=True)
            dirs[:] = []
    return removed


def read_bytes(path: Path, limit: int) -> bytes:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise Untrusted(
            f"{Path(path).name}: cannot open without following links ({err})"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Untrusted(f"{Path(path).name}: not a regular file")
        if st.st_size > limit:
            raise Untrusted(f"{Path(path).name}: {st.st_size} bytes, over {limit}")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise Untrusted(f"{Path(path).name}: grew past {limit} bytes while read")
        return data
    finally:
        os.close(fd)


def clean(value, depth: int = 0):
    """The same data with every string encodable as UTF-8 (lone surrogates become U+FFFD)."""
    if depth > 64:
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [clean(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(clean(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return {clean(k, depth + 1): clean(v, depth + 1) for k, v in value.items()}
    return value


# Markdown needs no HTML beyond formatting; links and images keep only safe attributes.
SAFE_TAGS = {
    "a",
    "b",
    "blockquote",
    "br",
    "code",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
SAFE_ATTRIBUTES = {"a": ["href", "title"], "img": ["src", "alt", "title"]}


# Link schemes that run code when a link is followed, however a markdown renderer spells them.
SCRIPT_SCHEMES = ("javascript:", "vbscript:")
_URL_NOISE = re.compile(r"[\x00-\x20\\\x7f]+")  # what browsers and markdown drop from a URL


def script_link(text: str) -> bool:
    """Whether `text` could carry a link or image whose URL runs script, in any markdown or
    HTML spelling: entities (`&#x3A;`, `&colon;`), percent-encoding, backslash escapes,
    whitespace or control characters inside the scheme, any letter case. Deliberately blunt
    (prose that spells out such a scheme counts too): markdown renderers differ in what they
    parse as a link, so the text as a whole is judged, not one parser's reading of it."""
    flat = text
    for _ in range(3):  # entities and percent-encoding, nested a few times
        flat = urllib.parse.unquote(html.unescape(flat))
    flat = _URL_NOISE.sub("", flat).lower()
    return any(scheme in flat for scheme in SCRIPT_SCHEMES)


def as_text_block(text: str) -> str:
    """Markdown that shows `text` verbatim as a code block: its fence is longer than any run
    of backticks in it, so nothing inside can close it, and nothing in it is rendered."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return (
        "*[This markdown cell is shown as text: it holds a link that would run script.]*\n\n"
        f"{fence}text\n{text}\n{fence}\n"
    )


def safe_markdown(source) -> str:
    """Markdown whose HTML is inert: disallowed tags are escaped (shown as text), attributes
    such as onerror= dropped, and only http(s), mailto and data-free links kept. A cell that
    could carry a script link in markdown's own syntax (`[x](javascript:...)`, a reference
    definition, any spelling `script_link` knows), which HTML sanitizing does not see and
    nbconvert renders live, is shown as a code block instead (`as_text_block`)."""
    import bleach

    text = "".join(source) if isinstance(source, list) else str(source)
    clean = bleach.clean(
        text,
        tags=SAFE_TAGS,
        attributes=SAFE_ATTRIBUTES,
        protocols={"http", "https", "mailto"},
        strip=False,
        strip_comments=True,
    )
    # Sanitized inside the code block too, so that no HTML is live even where a renderer
    # would not honour the fence.
    return as_text_block(clean) if script_link(text) else clean


def is_text(name: str) -> bool:
    """Whether a name read from the file system is text (no undecodable bytes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_name(name: str) -> str:
    """A file name as it can be shown and stored: undecodable bytes written as \\xNN."""
    return os.fsencode(name).decode("utf-8", "backslashreplace") if not is_text(name) else name


def loads(text: str):
    """json.loads that turns a too-deep document into an Untrusted error."""
    try:
        return json.loads(text)
    except RecursionError:
        raise Untrusted("JSON nested too deeply") from None


def read_json(path: Path, limit: int = JSON_LIMIT):
    data = read_bytes(path, limit)
    try:
        return clean(loads(data.decode("utf-8", "replace")))
    except ValueError as err:
        raise Untrusted(f"{Path(path).name}: not JSON ({err})") from None


def _text(value) -> str:
    return str(clean(str(value)))[:TEXT_LIMIT]


def load_probe(folder: Path) -> Probe:
    """A probe's arrays and messages, checked before anything is decompressed."""
    meta = read_json(folder / "messages.json", JSON_LIMIT)
    if not isinstance(meta, dict):
        raise Untrusted("messages.json: not an object")
    errors_in = meta.get("errors", {})
    calls_in = meta.get("framework_calls", [])
    if not isinstance(errors_in, dict) or not isinstance(calls_in, list):
        raise Untrusted("messages.json: malformed")
    errors = {_text(k)[:200]: _text(v) for k, v in list(errors_in.items())[:MAX_ERRORS]}
    calls = [_text(c)[:200] for c in calls_in[:MAX_ERRORS]]
    blob = read_bytes(folder / "arrays.npz", NPZ_LIMIT)
    arrays = {}
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            members = zf.infolist()
            if len(members) > MAX_MEMBERS:
                raise Untrusted(f"arrays.npz: {len(members)} members, over {MAX_MEMBERS}")
            if sum(m.file_size for m in members) > ARRAYS_LIMIT:
                raise Untrusted(f"arrays.npz: declares over {ARRAYS_LIMIT} bytes")
            for m in members:
                if not m.filename.endswith(".npy") or m.is_dir():
                    raise Untrusted(f"arrays.npz: unexpected member {m.filename[:80]!r}")
                with zf.open(m) as f:
                    arrays[m.filename[:-4]] = _read_member(f, m.file_size)
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise Untrusted(f"arrays.npz: {err}") from None
    return Probe(arrays, errors, calls, from_sandbox=True)


def _read_member(f, size: int) -> np.ndarray:
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = fmt.read_array_header_2_0(f)
    else:
        raise Untrusted(f"arrays.npz: npy format {version}")
    if dtype.hasobject:
        raise Untrusted("arrays.npz: object arrays are not accepted")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > size:
        raise Untrusted("arrays.npz: an array's header declares more data than it holds")
    data = f.read(nbytes + 1)
    if len(data) != nbytes:
        raise Untrusted("arrays.npz: an array's data does not match its header")
    arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return arr.copy()
