"""DuckDB connections with the Delta extension loaded from its PyPI wheel.

DuckDB would otherwise try to download the extension on first use of ``delta_scan``, which
cannot work offline; every DuckDB connection lakepulse opens goes through here.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import duckdb_extension_delta
import duckdb_extension_postgres

MEMORY_LIMIT_ENV = "LAKEPULSE_DUCKDB_MEMORY_LIMIT"
"""DuckDB's ``memory_limit`` for every connection of this process (e.g. ``1GB``); unset,
DuckDB's default (80 % of the machine's memory). The pipeline worker sets it for its cycles
(:data:`WORKER_MEMORY_LIMIT`)."""

WORKER_MEMORY_LIMIT = "400MB"
"""The pipeline worker's ``memory_limit``, unless :data:`MEMORY_LIMIT_ENV` says otherwise. A
session tier's build at ten million events peaked at 2.5 GiB of the worker's memory without a
limit, 1.8 GiB at 1 GB; the worker keeps the warehouse open between cycles, and its peak was
2.20 GiB at 1 GB, 1.94 GiB at 640 MB, as fresh (``bench_freshness``). On a copy of the ten
million event history (the worker in one process, with PostgreSQL, five minutes), 400 MB held
the process at 1.26 GB (median) and 1.42 GB (max) against 1.48 and 1.67 GB at 640 MB, in cycles
as fast; DuckDB's allocator settings (flush thresholds, background threads) changed nothing. A
catch-up (a new worker's first turn of each tier, or a turn after a failed step) runs under it
too: without it, the catch-up at ten million events held 2.81 GiB, the worker's peak. Only a
catch-up that failed (out of memory, say) is retried without it: a backlog of a million events
needed more than 1 GB in ``int_sessions``."""


THREADS_ENV = "LAKEPULSE_DUCKDB_THREADS"
"""DuckDB's ``threads`` for every connection of this process; unset, DuckDB's default (one per
core). The pipeline worker sets it for its steady cycles (:data:`WORKER_THREADS`)."""

WORKER_THREADS = 1
"""The pipeline worker's DuckDB ``threads`` in its steady cycles, unless :data:`THREADS_ENV`
says otherwise. A cycle's queries are small (seconds of events against the stored history), and
splitting each over both cores cost more than it saved: on a copy of the ten million event
history (the worker in one process with PostgreSQL, two runs side by side), one thread took
4.66 CPU seconds a cycle against 5.21 with two, for 6 % more time in its stages. dbt still runs
two models at once. A catch-up, much larger, keeps DuckDB's default."""


def memory_limit() -> str | None:
    return os.environ.get(MEMORY_LIMIT_ENV) or None


def duckdb_threads() -> int | None:
    value = os.environ.get(THREADS_ENV)
    return int(value) if value else None


@contextmanager
def resource_limited(limit: str | None, threads: int | None = None) -> Iterator[None]:
    """The connections opened inside keep to memory ``limit`` and ``threads`` (None: DuckDB's
    default); the environment is as it was afterwards."""
    wanted = {MEMORY_LIMIT_ENV: limit, THREADS_ENV: str(threads) if threads else None}
    before = {name: os.environ.get(name) for name in wanted}
    for name, value in wanted.items():
        if value:
            os.environ[name] = value
        else:
            os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def apply_resource_limits(conn, reset: bool = False) -> None:
    """Set the memory limit and threads of :data:`MEMORY_LIMIT_ENV` and :data:`THREADS_ENV`, if
    any, on a connection's database (with ``reset``, an unset one gets DuckDB's default back:
    a database that outlives one cycle)."""
    limit = memory_limit()
    if limit:
        conn.execute(f"set memory_limit = '{limit.replace(chr(39), '')}'")
    elif reset:
        conn.execute("reset memory_limit")
    threads = duckdb_threads()
    if threads:
        conn.execute(f"set threads = {threads:d}")
    elif reset:
        conn.execute("reset threads")


def checkpoint_deferring_vacuum(conn) -> None:
    """Checkpoint a database without its vacuum, which the database's next ordinary checkpoint
    (its close, at the latest) still does.

    A checkpoint writes what the log holds, and merges the row groups that deletes have thinned
    (DuckDB's vacuum). The pipeline worker's models replace rows in place every cycle, so on a
    copy of the ten million event history the vacuum was 80 % of a checkpoint: 11.6 s against
    2.0 s for the same 81 MB log without it, and the checkpoints of session 24's benchmark
    (9 to 15 s) held the live tier back by as long. The worker's steady checkpoints defer it,
    and its close (at each rollover of its run, or when it hands the warehouse over) vacuums
    what the run deleted."""
    conn.execute("set max_vacuum_tasks = 0")
    try:
        conn.execute("checkpoint")
    finally:
        conn.execute("reset max_vacuum_tasks")


def _extension_path(package, name: str) -> Path:
    base = Path(package.__file__).parent / "extensions"
    return base / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"


def delta_extension_path() -> Path:
    return _extension_path(duckdb_extension_delta, "delta")


def load_delta(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"LOAD '{delta_extension_path()}'")


def load_postgres(conn: duckdb.DuckDBPyConnection) -> None:
    """The wheel ships the extension as ``postgres.duckdb_extension`` but DuckDB derives the
    entry point from the file name (``postgres_scanner``): load it through a link so named."""
    source = _extension_path(duckdb_extension_postgres, "postgres")
    link_dir = Path(tempfile.gettempdir()) / f"lakepulse-duckdb-{duckdb.__version__}-{os.getuid()}"
    link = link_dir / "postgres_scanner.duckdb_extension"
    if not link.exists():
        link_dir.mkdir(parents=True, exist_ok=True)
        tmp = link_dir / f".{os.getpid()}.link"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(source)
        os.replace(tmp, link)
    conn.execute(f"LOAD '{link}'")


def connect(
    path: str | Path = ":memory:", read_only: bool = False, delta: bool = True
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the Delta extension loaded, unless ``delta`` is False (loading
    it costs ~0.3 s: a reader of DuckDB files only, in the pipeline worker's cycle every few
    seconds, leaves it out)."""
    conn = duckdb.connect(
        str(path),
        read_only=read_only,
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    apply_resource_limits(conn)
    if delta:
        load_delta(conn)
    return conn


_MEMORY_DATABASE: duckdb.DuckDBPyConnection | None = None
_MEMORY_DATABASE_LOCK = threading.Lock()


def memory_cursor() -> duckdb.DuckDBPyConnection:
    """A cursor of this process's in-memory DuckDB, whose Delta extension is loaded once: for
    the short reads of a loop (the pipeline worker's bronze suite and firing, every few
    seconds), where :func:`connect` would load it each time (0.15-0.3 s). Close the cursor
    when done. Every cursor shares the database: what one creates outside its temporary
    schema, or attaches, the others see, so a caller creates temporary objects only and
    detaches what it attaches."""
    global _MEMORY_DATABASE
    with _MEMORY_DATABASE_LOCK:
        if _MEMORY_DATABASE is None:
            _MEMORY_DATABASE = connect()
        cursor = _MEMORY_DATABASE.cursor()
    apply_resource_limits(cursor, reset=True)
    return cursor


def copy_database(
    source: Path,
    target: Path,
    schemas: tuple[str, ...] | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> None:
    """Copy a DuckDB database (or only the tables of ``schemas``) into a fresh file and swap it
    in by rename. The copy holds only live data: DuckDB does not zero the blocks it frees, so
    this is also how deleted rows leave the disk. ``connection``: a connection whose default
    database is ``source``, open in this process (which then cannot attach the file again):
    the copy reads through it, under its settings (its memory limit)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    conn = duckdb.connect() if connection is None else connection.cursor()
    try:
        if connection is None:
            conn.execute(f"attach '{source}' as source (read_only)")
            name = "source"
        else:
            (name,) = conn.execute("select current_database()").fetchone()
            conn.execute("detach database if exists copy_target")  # left by a failed copy
        conn.execute(f"attach '{tmp}' as copy_target")
        try:
            # One transaction: the copy reads one snapshot of the source, whatever commits
            # beside it (the pipeline worker's builds, while it refreshes the replica).
            conn.execute("begin")
            try:
                if schemas is None:
                    conn.execute(f'copy from database "{name}" to copy_target')
                else:
                    _copy_schemas(conn, name, schemas)
                conn.execute("commit")
            except BaseException:
                conn.execute("rollback")
                raise
        finally:
            conn.execute("detach copy_target")
        if connection is None:
            conn.execute("detach source")
    finally:
        conn.close()
    os.replace(tmp, target)


def _copy_schemas(conn: duckdb.DuckDBPyConnection, source: str, schemas: tuple[str, ...]) -> None:
    """The tables of ``schemas`` in database ``source``, into the database ``copy_target``."""
    tables = conn.execute(
        "select schema_name, table_name from duckdb_tables() "
        "where database_name = ? and list_contains(?, schema_name)",
        [source, list(schemas)],
    ).fetchall()
    for schema in schemas:
        conn.execute(f'create schema if not exists copy_target."{schema}"')
    for schema, table in tables:
        conn.execute(
            f'create table copy_target."{schema}"."{table}" as '
            f'select * from "{source}"."{schema}"."{table}"'
        )
