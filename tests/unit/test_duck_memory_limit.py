"""The DuckDB memory limit from the environment: the pipeline worker's bound on its buffer pool,
on its own connections and on dbt's (the plugin)."""

from __future__ import annotations

import os

import duckdb

from lakepulse.core.duck import MEMORY_LIMIT_ENV, connect, memory_limited
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
    conn = duckdb.connect(config={"autoload_known_extensions": False})
    Plugin.__new__(Plugin).configure_connection(conn)
    assert conn.execute("select current_setting('memory_limit')").fetchone()[0] == "667.5 MiB"


def test_a_limit_holds_for_its_block_and_the_environment_is_restored(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "2GB")
    with memory_limited("700MB"):
        limited = connect(delta=False).execute("select current_setting('memory_limit')")
        assert limited.fetchone()[0] == "667.5 MiB"
    with memory_limited(None):
        unlimited = connect(delta=False).execute("select current_setting('memory_limit')")
        assert unlimited.fetchone()[0] != "667.5 MiB"
        assert MEMORY_LIMIT_ENV not in os.environ
    assert os.environ[MEMORY_LIMIT_ENV] == "2GB"
