"""Read-only ad-hoc SQL over bronze (Delta) and the marts (DuckDB warehouse)."""

from __future__ import annotations

import duckdb

from lakepulse.core.duck import connect, copy_database
from lakepulse.core.settings import BRONZE_TABLES, Settings

# What readers outside a build see: the marts. Staging and intermediate tables are dbt's
# working state (event-level, as large as the history), so copying them every minute would
# make the minute's cost grow with history. The trigger kinds' candidates (small) are copied
# for `lakepulse triggers fire`.
REPLICA_SCHEMAS = ("marts", "triggers")


def refresh_replica(
    settings: Settings, connection: duckdb.DuckDBPyConnection | None = None
) -> None:
    """Copy the freshly built marts to a read replica and swap it in by rename. Ad-hoc readers,
    publishing, checks and sensors open the replica, so they never hold a lock the next build
    needs, and a build in progress never makes them wait or fail; a reader keeps the copy it
    opened. ``connection``: the warehouse's connection that its owner (the pipeline worker)
    keeps open, to copy through."""
    copy_database(
        settings.warehouse_path,
        settings.replica_path,
        schemas=REPLICA_SCHEMAS,
        connection=connection,
    )


def rewrite_warehouse(settings: Settings) -> None:
    """Compact the warehouse into a fresh file (old blocks, and any deleted rows in them, are
    gone), then refresh the replica from it. Takes the warehouse's write lock: run it when no
    build is running."""
    if settings.warehouse_path.exists():
        copy_database(settings.warehouse_path, settings.warehouse_path)
        refresh_replica(settings)
    # The publish's state of the large marts (their keys) goes too: the next publish copies
    # them whole and starts a fresh one.
    settings.published_state_path.unlink(missing_ok=True)


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
    replica = settings.replica_path
    if replica.exists():
        conn.execute(f"attach '{replica}' as warehouse (read_only)")
        conn.execute("use warehouse")
    else:
        notes.append("no marts yet: run `lakepulse build` first")
    return conn, notes
