"""The DuckDB memory limit and threads from the environment: the pipeline worker's bound on its
buffer pool and its cores, on its own connections and on dbt's (the plugin)."""

from __future__ import annotations

import os

import duckdb

from lakepulse.core.duck import MEMORY_LIMIT_ENV, THREADS_ENV, connect, resource_limited
from lakepulse.warehouse.dbt_plugin import Plugin


def test_connections_keep_to_the_limit_the_environment_sets(monkeypatch):
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    default = connect(delta=False).execute("select current_setting('memory_limit')").fetchone()[0]
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "700MB")
    limited = connect(delta=False).execute("select current_setting('memory_limit')").fetchone()[0]
    assert limited == "667.5 MiB"  # 700 * 1000^2 bytes
    assert default != limited


def test_dbt_connections_keep_to_it_too(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "700MB")
    monkeypatch.setenv(THREADS_ENV, "1")
    conn = duckdb.connect(config={"autoload_known_extensions": False, "threads": 2})
    Plugin.__new__(Plugin).configure_connection(conn)
    assert conn.execute("select current_setting('memory_limit')").fetchone()[0] == "667.5 MiB"
    assert conn.execute("select current_setting('threads')").fetchone()[0] == 1


def test_threads_hold_for_their_block_and_a_database_that_outlives_it_gets_its_default_back(
    monkeypatch,
):
    """A steady cycle's one thread, then a catch-up's default on the same open database."""
    from lakepulse.core.duck import apply_resource_limits

    monkeypatch.delenv(THREADS_ENV, raising=False)
    conn = duckdb.connect(config={"autoload_known_extensions": False, "threads": 2})
    with resource_limited("700MB", threads=1):
        apply_resource_limits(conn, reset=True)
        assert conn.execute("select current_setting('threads')").fetchone()[0] == 1
        assert connect(delta=False).execute("select current_setting('threads')").fetchone()[0] == 1
    with resource_limited(None, threads=None):
        apply_resource_limits(conn, reset=True)
        default = duckdb.connect().execute("select current_setting('threads')").fetchone()[0]
        assert conn.execute("select current_setting('threads')").fetchone()[0] == default
    assert THREADS_ENV not in os.environ


def test_a_limit_holds_for_its_block_and_the_environment_is_restored(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "2GB")
    with resource_limited("700MB"):
        limited = connect(delta=False).execute("select current_setting('memory_limit')")
        assert limited.fetchone()[0] == "667.5 MiB"
    with resource_limited(None):
        unlimited = connect(delta=False).execute("select current_setting('memory_limit')")
        assert unlimited.fetchone()[0] != "667.5 MiB"
        assert MEMORY_LIMIT_ENV not in os.environ
    assert os.environ[MEMORY_LIMIT_ENV] == "2GB"


def test_the_process_cursor_loads_delta_once_and_follows_each_cycles_limit(tmp_path):
    """memory_cursor: one in-memory database for the process (Delta loaded in it once), whose
    limit follows the block each cursor is opened in, a catch-up's none included."""
    from deltalake import write_deltalake

    from lakepulse.core.duck import memory_cursor

    write_deltalake(str(tmp_path / "t"), __import__("pyarrow").table({"x": [1, 2, 3]}))
    first = memory_cursor()
    first.execute("create table shared_probe as select 1 as one")
    second = memory_cursor()
    try:
        assert second.execute("select one from shared_probe").fetchone() == (1,)  # one database
        assert second.execute(f"select sum(x) from delta_scan('{tmp_path / 't'}')").fetchone() == (
            6,
        )
    finally:
        first.execute("drop table shared_probe")
        first.close()
        second.close()
    with resource_limited("700MB"):
        limited = memory_cursor()
        assert limited.execute("select current_setting('memory_limit')").fetchone()[0] == (
            "667.5 MiB"
        )
    with resource_limited(None):
        unlimited = memory_cursor()
        assert unlimited.execute("select current_setting('memory_limit')").fetchone()[0] != (
            "667.5 MiB"
        )
