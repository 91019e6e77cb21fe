"""Read-only ad-hoc SQL over bronze (Delta) and the marts (DuckDB warehouse)."""

from __future__ import annotations

import duckdb

from lakepulse.config import Settings
from lakepulse.duck import connect

BRONZE_TABLES = ("events", "events_rejected")


def explorer(settings: Settings) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """An in-memory DuckDB with ``raw.<table>`` views over Delta and the warehouse attached
    read-only as ``warehouse``. Returns the connection and notes for the user."""
    conn = connect()
    notes: list[str] = []
    # A catalog named `raw`, so `raw.events` resolves whichever database is in use.
    conn.execute("attach ':memory:' as raw")
    for table in BRONZE_TABLES:
        path = settings.lake_dir / "raw" / table
        if (path / "_delta_log").exists():
            conn.execute(f"create view raw.main.{table} as select * from delta_scan('{path}')")
        elif table == "events":
            notes.append("raw.events does not exist yet: send events, then run `lakepulse ingest`")
    if settings.warehouse_path.exists():
        try:
            conn.execute(f"attach '{settings.warehouse_path}' as warehouse (read_only)")
            conn.execute("use warehouse")
        except duckdb.IOException:
            notes.append(
                "the marts are being rebuilt right now (warehouse locked); try again in a few seconds"
            )
    else:
        notes.append("no marts yet: run `lakepulse build` first")
    return conn, notes
