"""The caps on what the grader reads from a sandbox's /out, each shown twice on the same forged
files: with the protection the grader's memory and output stay bounded; with the protection
switched off (its constant raised, as if the check were not there) the same files get through.
So each test fails if its protection is removed (issue 13's acceptance)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from bnlab.checks.harness import Probe
from bnlab.grading import grader, untrusted

OFF = 2**40  # a cap this large is no cap


def _bomb(folder, mib: int = 128):
    """arrays.npz of under 1 MB holding one member of `mib` MiB of zeros."""
    Probe({"a": np.zeros(1)}).save(folder)
    header = io.BytesIO()
    n = mib * 2**20 // 8
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (n,)}
    )
    with zipfile.ZipFile(folder / "arrays.npz", "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("out.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            for _ in range(mib // 8):
                f.write(bytes(2**23))
    assert (folder / "arrays.npz").stat().st_size < 1_000_000
    return n


def test_decompression_bomb_refused_and_decompressed_without_the_cap(tmp_path, monkeypatch):
    n = _bomb(tmp_path)
    with pytest.raises(untrusted.Untrusted, match="declares over"):
        untrusted.load_probe(tmp_path)
    monkeypatch.setattr(untrusted, "ARRAYS_LIMIT", OFF)
    assert untrusted.load_probe(tmp_path).arrays["out"].size == n  # 128 MiB in memory


def test_member_count_capped_and_all_read_without_the_cap(tmp_path, monkeypatch):
    Probe({"a": np.zeros(1)}).save(tmp_path)
    member = io.BytesIO()
    np.lib.format.write_array(member, np.zeros(0))
    many = untrusted.MAX_MEMBERS * 4
    with zipfile.ZipFile(tmp_path / "arrays.npz", "w") as z:
        for i in range(many):
            z.writestr(f"m{i}.npy", member.getvalue())
    with pytest.raises(untrusted.Untrusted, match="members"):
        untrusted.load_probe(tmp_path)
    monkeypatch.setattr(untrusted, "MAX_MEMBERS", OFF)
    assert len(untrusted.load_probe(tmp_path).arrays) == many


def test_messages_capped_in_number_and_length(tmp_path, monkeypatch):
    Probe({"a": np.zeros(1)}).save(tmp_path)
    errors = {f"case {i}": "ok [forward.normalizes]: " + "x" * 1800 for i in range(900)}
    (tmp_path / "messages.json").write_text(json.dumps({"errors": errors, "framework_calls": []}))
    probe = untrusted.load_probe(tmp_path)
    assert len(probe.errors) == untrusted.MAX_ERRORS
    assert probe.from_sandbox  # shown only as quoted, labelled learner output
    monkeypatch.setattr(untrusted, "MAX_ERRORS", OFF)
    monkeypatch.setattr(untrusted, "TEXT_LIMIT", OFF)
    probe = untrusted.load_probe(tmp_path)
    assert len(probe.errors) == 900 and sum(map(len, probe.errors.values())) > 1_600_000


def _forged_cells(out, n: int, chars: int) -> tuple[list, dict]:
    """n code cells whose /out/cells/i.json each claim `chars` characters of output."""
    (out / "cells").mkdir(parents=True)
    cells, job_cells = [], []
    for i in range(n):
        cells.append({"cell_type": "code", "source": "", "metadata": {}, "outputs": []})
        job_cells.append({"index": i, "kind": "code", "source": ""})
        (out / "cells" / f"{i}.json").write_text(json.dumps({"stdout": "y" * chars}))
    return cells, {"cells": job_cells}


def _written(cells) -> int:
    return sum(len(o["text"]) for c in cells for o in c.get("outputs", []))


def test_forged_cell_output_capped_per_cell_and_per_submission(tmp_path, monkeypatch):
    cells, job = _forged_cells(tmp_path, 400, 900_000)  # 360 MB claimed
    grader.fill_outputs(cells, job, tmp_path, None)
    assert max(_written([c]) for c in cells) <= grader.CELL_OUTPUT_CHARS
    assert _written(cells) <= grader.SUBMISSION_OUTPUT_CHARS + 100
    monkeypatch.setattr(grader, "CELL_OUTPUT_CHARS", OFF)
    cells, job = _forged_cells(tmp_path / "off", 40, 900_000)
    grader.fill_outputs(cells, job, tmp_path / "off", None)
    assert _written([cells[0]]) == 900_000  # one cell alone: 180 times the per-cell cap
    monkeypatch.setattr(grader, "SUBMISSION_OUTPUT_CHARS", OFF)
    grader.fill_outputs(cells, job, tmp_path / "off", None)
    assert _written(cells) == 40 * 900_000


def test_a_linked_timestamp_is_not_read_and_a_plain_read_copies_its_target(tmp_path):
    """timestamp.txt as a link to the course's source notebook: the grader's read refuses it
    (it would copy the file into autograded/ and feedback/); a plain read hands out the
    hidden tests."""
    source = tmp_path / "source.ipynb"
    source.write_text("### BEGIN HIDDEN TESTS\nchecks.check('forward.eps', f, seed=7)\n")
    stamp = tmp_path / "timestamp.txt"
    stamp.symlink_to(source)
    assert "HIDDEN TESTS" in stamp.read_text()
    with pytest.raises(untrusted.Untrusted, match="following links"):
        untrusted.read_bytes(stamp, 4096)


# Markdown links that run script when followed, in spellings that HTML sanitizing (bleach) does
# not see, because they are markdown's own syntax: nbconvert (feedback pages, the formgrader's
# view of an autograded notebook) renders each as a live link.
SCRIPT_LINKS = [
    "[notes](javascript:window.pwned=1)",
    "![figure](javascript:window.pwned=1)",
    "[see below][r]\n\n[r]: javascript:window.pwned=1",
    "[tab](java&#x09;script:window.pwned=1)",
    "[entity](javascript&colon;window.pwned=1)",
    "[escaped](javascript\\:window.pwned=1)",
    "[percent](java%0Ascript:window.pwned=1)",
    "[case](JaVaScRiPt:window.pwned=1)",
    "[decimal](jav&#97;script:window.pwned=1)",
    "[vb](vbscript:msgbox(1))",
]


def live_script_urls(markdown: str) -> list[str]:
    """The href/src values a renderer makes of `markdown` (nbconvert's mistune, unsanitized, as
    a page without `sanitize_html` would show it) that would run script."""
    import re
    import urllib.parse
    from html.parser import HTMLParser

    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    urls: list[str] = []

    class Links(HTMLParser):  # attributes of real tags only, not text that looks like them
        def handle_starttag(self, tag, attrs):
            urls.extend(v or "" for k, v in attrs if k in ("href", "src", "action", "formaction"))

    Links().feed(markdown2html_mistune(markdown))
    flat = [re.sub(r"[\x00-\x20\\]", "", urllib.parse.unquote(u)).lower() for u in urls]
    return [u for u in flat if u.startswith(("javascript:", "vbscript:"))]


@pytest.mark.parametrize("link", SCRIPT_LINKS)
def test_markdown_script_links_are_shown_as_text_and_live_without_the_check(link, monkeypatch):
    text = f"My answer, with a link: {link}\n"
    safe = untrusted.safe_markdown(text)
    assert live_script_urls(safe) == []
    assert "shown as text" in safe and link.splitlines()[0].split("(")[0] in safe
    # The check switched off (HTML sanitizing alone, as before): the link is live.
    monkeypatch.setattr(untrusted, "script_link", lambda _: False)
    assert live_script_urls(untrusted.safe_markdown(text)) != []


def test_a_code_block_made_of_learner_text_cannot_be_closed_from_inside():
    text = "```\n````\n[x](javascript:1)\n<script>window.pwned=1</script>"
    safe = untrusted.safe_markdown(text)
    assert live_script_urls(safe) == [] and "<script" not in safe
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    rendered = markdown2html_mistune(safe)
    assert rendered.count("<pre>") == 1 and "<script" not in rendered


def test_honest_markdown_keeps_its_links_maths_and_text():
    text = "See [the paper](https://arxiv.org/abs/1502.03167), $\\hat x_i$, and a < b & c."
    safe = untrusted.safe_markdown(text)
    assert "shown as text" not in safe
    assert "[the paper](https://arxiv.org/abs/1502.03167)" in safe and "$\\hat x_i$" in safe
