"""The delivery state: ``lake/triggers/deliveries`` (Delta, append-only), one row per state
change of a (firing, destination). Its rows are the history; a delivery's current state is its
latest row, and a treatment firing with no row yet is pending. Everything here reads or writes
that table (and the firings it is joined with); the pass and the dead-letter re-queue decide
what to write."""

from __future__ import annotations

import json
import math
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakepulse.core.locks import exclusive_lock
from lakepulse.core.settings import Settings
from lakepulse.warehouse.trigger_tables import DELIVERIES_SCHEMA

COMPACT_EVERY_COMMITS = 100
"""Every this many commits the state table's small files are rewritten into few."""

QUIET: dict[Path, tuple[tuple[int, int], datetime | None]] = {}
"""Per data directory, after a pass that found nothing due: the two tables' versions and when
the earliest retry falls due. While neither table has changed and that time has not come, the
next pass knows there is nothing to do without scanning."""


def pass_lock(settings: Settings) -> AbstractContextManager[bool]:
    """One delivery pass (or re-queue) at a time per data directory; never waits."""
    return exclusive_lock(settings.trigger_delivery_lock_path, wait=False)


def latest_sql(deliveries: Path) -> str:
    """Each delivery's latest row: its current state."""
    return (
        f"select * from delta_scan('{deliveries}') qualify row_number() over "
        "(partition by firing_id, destination order by recorded_at desc, attempts desc) = 1"
    )


def cursor():
    """A cursor of this process's in-memory DuckDB, the Delta extension loaded once: a pass
    every few seconds should not pay for it every time (:func:`~lakepulse.core.duck.memory_cursor`)."""
    from lakepulse.core.duck import memory_cursor

    return memory_cursor()


def table_versions(settings: Settings) -> tuple[int, int]:
    """The firings' and the deliveries' Delta versions: equal versions, equal contents."""
    from deltalake import DeltaTable

    return (
        DeltaTable(str(settings.trigger_firings_path)).version(),
        DeltaTable(str(settings.trigger_deliveries_path)).version(),
    )


def next_retry_at(settings: Settings) -> datetime | None:
    """When the earliest delivery waiting for a retry falls due (None: none waits)."""
    conn = cursor()
    try:
        return conn.execute(
            f"select min(next_attempt_at) from ({latest_sql(settings.trigger_deliveries_path)}) "
            "where status = 'retrying'"
        ).fetchone()[0]
    finally:
        conn.close()


def due_deliveries(settings: Settings, now: datetime, limit: int) -> list[dict]:
    """Treatment firings x their destinations with no row, or whose latest row is
    ``pending``/``retrying`` and due at ``now``; at most ``limit`` per destination, tenant-level
    firings (no user) first, then the oldest."""
    conn = cursor()
    try:
        return (
            conn.execute(
                f"""
                with latest as ({latest_sql(settings.trigger_deliveries_path)}),
                targets as (
                    select *, unnest(from_json(destinations, '["VARCHAR"]')) as destination
                    from delta_scan('{settings.trigger_firings_path}')
                    where arm = 'treatment' and json_valid(destinations)
                )
                select
                    targets.firing_id, targets.destination, targets.tenant_id, targets.trigger,
                    targets.kind, targets.user_id, targets.fired_at, targets.occurred_at,
                    targets.payload, coalesce(latest.attempts, 0) as attempts
                from targets
                left join latest using (firing_id, destination)
                where latest.status is null
                    or (latest.status in ('pending', 'retrying')
                        and coalesce(latest.next_attempt_at <= $now, true))
                qualify row_number() over (
                    partition by targets.destination
                    order by targets.user_id is not null, targets.fired_at, targets.firing_id
                ) <= $limit
                order by
                    targets.destination, targets.user_id is not null, targets.fired_at,
                    targets.firing_id
                """,
                {"now": now, "limit": limit},
            )
            .fetch_arrow_table()
            .to_pylist()
        )
    finally:
        conn.close()


def dead_letters(settings: Settings, trigger: str | None, destination: str | None) -> list[dict]:
    """The latest rows of the dead deliveries (of one trigger, or one destination)."""
    from lakepulse.core.duck import connect

    conn = connect()
    try:
        return (
            conn.execute(
                f"select * from ({latest_sql(settings.trigger_deliveries_path)}) "
                "where status = 'dead' and ($trigger is null or trigger = $trigger) "
                "and ($destination is null or destination = $destination)",
                {"trigger": trigger, "destination": destination},
            )
            .fetch_arrow_table()
            .to_pylist()
        )
    finally:
        conn.close()


def append_rows(settings: Settings, rows: list[dict]) -> None:
    """Append state rows (one commit)."""
    from deltalake import write_deltalake

    table = pa.Table.from_pylist(rows, schema=DELIVERIES_SCHEMA)
    write_deltalake(str(settings.trigger_deliveries_path), table, mode="append")


def compact_every(settings: Settings, version_before: int, commits: int) -> None:
    """Every ``commits`` commits, rewrite the state table's small files into few and write a
    checkpoint: each flush is a commit, and the due query reads them all. The rows (the
    history) stay; only their files change."""
    from deltalake import DeltaTable

    table = DeltaTable(str(settings.trigger_deliveries_path))
    if table.version() // commits != version_before // commits:
        table.optimize.compact()
        table.create_checkpoint()


def buyer_signals(settings: Settings, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Each (tenant, user)'s row of ``mart_buyer_signals`` in the replica, when it exists: the
    ``signals`` a webhook body and an e-mail template carry."""
    from lakepulse.core.duck import connect

    replica = settings.replica_path
    if not keys or not replica.exists():
        return {}
    conn = connect(replica, read_only=True)
    try:
        exists = conn.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'marts' and table_name = 'mart_buyer_signals'"
        ).fetchone()[0]
        if not exists:
            return {}
        wanted = pa.table(
            {"t": [k[0] for k in keys], "u": [k[1] for k in keys]},
        )
        conn.register("wanted", wanted)
        # Read by row id: the semi join reads only the two key columns, and the other columns
        # of the few rows it keeps. On the rows themselves DuckDB reads every column of every
        # user first, so each pass with firings would cost in proportion to all users.
        rows = (
            conn.execute(
                "select s.* from marts.mart_buyer_signals s where s.rowid in ("
                "select c.rowid from marts.mart_buyer_signals c "
                "semi join wanted on c.tenant_id = wanted.t and c.user_id = wanted.u)"
            )
            .fetch_arrow_table()
            .to_pylist()
        )
    finally:
        conn.close()
    out = {}
    for row in rows:
        key = (row.pop("tenant_id"), row.pop("user_id"))
        out[key] = json.loads(json.dumps(row, default=json_default))
    return out


def json_default(value: Any) -> Any:
    """JSON for the values DuckDB rows hold: ISO times, floats for decimals, null for NaN."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def iso(value: datetime | None) -> str | None:
    """``2026-01-01T00:00:00Z``: UTC, as every message shows a time."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
