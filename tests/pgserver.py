"""A throwaway PostgreSQL server for tests: Debian's binaries, a unix socket, no TCP port.

`postgres_server(tmp_path)` runs `initdb`, starts the server listening only on a socket in a
private temp dir, creates the database `gradebook` and yields its SQLAlchemy URL; the server
is stopped on exit, also when the body raised. Run as root, the server runs as the `postgres`
system user and its data dir lives in that private temp dir, since pytest's tmp_path is
root-only (mode 0700).

Other test modules reuse the module-scoped fixture with `from pgserver import pg_url`
(`# noqa: F401` on the import, `# noqa: F811` on the test that takes it: see test_postgres.py).
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

AS_ROOT = os.geteuid() == 0
USER = "postgres" if AS_ROOT else getpass.getuser()
RUN_AS = ["runuser", "-u", "postgres", "--"] if AS_ROOT else []


def version(bin_dir: Path) -> tuple[int, ...]:
    """(15,) for /usr/lib/postgresql/15/bin, (9, 6) for .../9.6/bin: sorts 15 above 9.6."""
    return tuple(int(n) for n in bin_dir.parent.name.split(".") if n.isdigit())


def pg_bin() -> Path | None:
    """$PG_BIN if set, else the newest /usr/lib/postgresql/<version>/bin that has the tools."""
    if os.environ.get("PG_BIN"):
        candidates = [Path(os.environ["PG_BIN"])]
    else:
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    return next(
        (b for b in candidates if (b / "initdb").is_file() and (b / "pg_ctl").is_file()), None
    )


def require_pg_bin() -> Path:
    """The binaries, or a skip (locally) / a failure (in CI) that says how to get them."""
    found = pg_bin()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's postgresql is missing: `make test` installs it (apt-get)")
        pytest.skip("postgresql not installed; `make test` as root installs it (or set $PG_BIN)")
    return found


@contextmanager
def postgres_server(tmp_path: Path) -> Iterator[str]:
    """Run a fresh server for the duration of the block; yield the URL of its `gradebook` db."""
    bin_dir = require_pg_bin()
    run_dir = Path(tempfile.mkdtemp(prefix="pg-"))  # short path: sockets are limited to ~100 bytes
    data = (run_dir if AS_ROOT else tmp_path) / "pgdata"
    log = run_dir / "server.log"
    if AS_ROOT:
        shutil.chown(run_dir, "postgres", "postgres")

    def run(*cmd: str) -> None:
        # cwd=run_dir: the postgres user may not be able to enter the caller's cwd.
        proc = subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True)
        if proc.returncode != 0:
            server_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}{server_log}")

    pg_ctl = [*RUN_AS, str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:
        initdb = [*RUN_AS, str(bin_dir / "initdb"), "-D", str(data), "-U", USER]
        run(*initdb, *"--auth=trust --encoding=UTF8 --no-locale --no-sync".split())
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = ''\nunix_socket_directories = '{run_dir}'\n")
            conf.write("fsync = off\n")
        run(*pg_ctl, "start", "-w", "-l", str(log))
        run(str(bin_dir / "createdb"), "-h", str(run_dir), "-U", USER, "gradebook")
        yield f"postgresql+psycopg://{USER}@/gradebook?host={run_dir}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*pg_ctl, "stop", "-w", "-m", "fast"], cwd=run_dir, capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLAlchemy URL of the `gradebook` database on a server private to the test module."""
    with postgres_server(tmp_path_factory.mktemp("pg")) as url:
        yield url
