"""`bn-course collect` screens nbgrader's exchange before the real `nbgrader collect` copies it.

Beside an honest inbound submission, four hostile ones, each of which pays under stock
`nbgrader collect` (shown on the same exchange): a notebook that is a symlink to the course's
source notebook (collect copies the target: solutions and hidden tests land in submitted/), the
same as a hard link, an inbound folder that is itself a link, and a folder named after another
account (`<their id>+STEM+<later time>`), which would replace that student's work.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bnlab.core.course import AUTOGRADER
from conftest import run_course

STEM = "02_forward_pass"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as others")


def _inbound(root: Path, name: str, notebook: bytes | None, owner: int = 0) -> Path:
    folder = root / "exchange" / "batchnorm" / "inbound" / name
    folder.mkdir(parents=True)
    if notebook is not None:
        (folder / f"{STEM}.ipynb").write_bytes(notebook)
    (folder / "timestamp.txt").write_text(name.split("+")[2])
    for path in (folder, *folder.iterdir()):
        os.lchown(path, owner, owner)
    return folder


def _exchange(root: Path) -> dict[str, Path]:
    released = (root / "release" / STEM / f"{STEM}.ipynb").read_bytes()
    source = root / "source" / STEM / f"{STEM}.ipynb"
    me = pwd.getpwuid(os.geteuid()).pw_name
    daemon = pwd.getpwnam("daemon").pw_uid
    honest = _inbound(root, f"{me}+{STEM}+2026-12-01 10:00:00.000000 UTC", released)
    linked = _inbound(root, f"daemon+{STEM}+2026-12-01 10:05:00.000000 UTC", None, daemon)
    (linked / f"{STEM}.ipynb").symlink_to(source)
    os.lchown(linked / f"{STEM}.ipynb", daemon, daemon)
    # another honest student, submitting from their own account
    real = _inbound(
        root, f"bin+{STEM}+2026-12-01 09:00:00.000000 UTC", released, pwd.getpwnam("bin").pw_uid
    )
    link = root / "exchange" / "batchnorm" / "inbound" / f"sys+{STEM}+2026-12-01 10:06:00 UTC"
    link.symlink_to(root / "source" / STEM)
    # the honest student impersonated: a later folder in their name, from nobody's account
    nobody = pwd.getpwnam("nobody").pw_uid
    impostor = _inbound(
        root, f"{me}+{STEM}+2026-12-01 11:00:00.000000 UTC", b'{"forged": true}', nobody
    )
    # a hard link to the course's source notebook (as root here; a learner can make one where
    # fs.protected_hardlinks is off, or to any file of theirs that another student wrote)
    games = pwd.getpwnam("games").pw_uid
    hard = _inbound(root, f"games+{STEM}+2026-12-01 10:07:00.000000 UTC", None, games)
    os.link(source, hard / f"{STEM}.ipynb")
    return {
        "honest": honest,
        "linked": linked,
        "link": link,
        "real": real,
        "impostor": impostor,
        "hard": hard,
    }


def _course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    run_course("release", STEM, env={"BNLAB_COURSE_ROOT": str(root)})
    return root


def test_collect_refuses_links_and_impostors(tmp_path):
    root = _course(tmp_path)
    made = _exchange(root)
    me = pwd.getpwuid(os.geteuid()).pw_name
    proc = run_course("collect", STEM, env={"BNLAB_COURSE_ROOT": str(root)})
    refused = (root / "reports" / f"{STEM}-collect-refused.txt").read_text()
    assert "symbolic link" in refused and f"daemon+{STEM}" in refused
    assert f"sys+{STEM}" in refused
    assert "by another account (nobody)" in refused
    assert f"games+{STEM}" in refused and "is a hard link (2 names for one file)" in refused
    assert "refused 4" in proc.stdout
    honest = root / "submitted" / me / STEM / f"{STEM}.ipynb"
    assert not honest.is_symlink()
    assert honest.read_bytes() == (made["honest"] / f"{STEM}.ipynb").read_bytes()
    assert not (root / "submitted" / "daemon").exists()
    assert not (root / "submitted" / "sys").exists()
    assert not (root / "submitted" / "games").exists()
    assert (root / "submitted" / "bin" / STEM / f"{STEM}.ipynb").is_file()
    for path in made.values():  # the exchange is left as it was: nothing is lost
        assert os.path.lexists(path)


def test_the_same_exchange_pays_under_stock_collect(tmp_path):
    """Without the screening: the solutions land in submitted/ and the impostor wins."""
    root = _course(tmp_path)
    _exchange(root)
    me = pwd.getpwuid(os.geteuid()).pw_name
    subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), "collect", STEM, "--update"],
        cwd=AUTOGRADER,
        env={**os.environ, "BNLAB_COURSE_ROOT": str(root)},
        check=True,
        capture_output=True,
    )
    stolen = root / "submitted" / "daemon" / STEM / f"{STEM}.ipynb"
    assert not stolen.is_symlink()
    assert "BEGIN HIDDEN TESTS" in stolen.read_text()
    hard = root / "submitted" / "games" / STEM / f"{STEM}.ipynb"
    assert "BEGIN HIDDEN TESTS" in hard.read_text()
    forged = (root / "submitted" / me / STEM / f"{STEM}.ipynb").read_text()
    assert json.loads(forged) == {"forged": True}
    shutil.rmtree(root)
