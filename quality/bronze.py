"""Expectations for the bronze event table ``raw.events``.

They restate the contract the collector enforces, so a bug anywhere upstream (collector,
loader, a manual write) is caught before dbt builds marts on top of it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from ingestion.contract import EVENT_TYPES
from ingestion.tenants import TenantRegistry
from lakepulse.core.duck import memory_cursor
from lakepulse.core.settings import Settings
from quality.runner import QualityResult, run_suite

EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)


def events_expectations(known_tenants: list[str], now: datetime | None = None):
    import great_expectations as gx

    now = now or datetime.now(UTC)
    ex = gx.expectations
    return lambda: [
        ex.ExpectColumnValuesToNotBeNull(column="tenant_id"),
        ex.ExpectColumnValuesToNotBeNull(column="message_id"),
        ex.ExpectColumnValuesToNotBeNull(column="timestamp"),
        ex.ExpectCompoundColumnsToBeUnique(column_list=["tenant_id", "message_id"]),
        ex.ExpectColumnValuesToBeInSet(column="type", value_set=sorted(EVENT_TYPES)),
        ex.ExpectColumnValuesToBeInSet(column="tenant_id", value_set=known_tenants),
        ex.ExpectColumnValuesToBeBetween(column="revenue", min_value=0),
        ex.ExpectColumnValuesToBeBetween(
            column="timestamp", min_value=EARLIEST_EVENT, max_value=now + timedelta(days=1)
        ),
    ]


def check_events(df: pd.DataFrame, known_tenants: list[str]) -> QualityResult:
    return run_suite("bronze_events", events_expectations(known_tenants), df)


def latest_load(settings: Settings) -> pd.DataFrame:
    """The rows of the most recent load: what this run added (bronze is upserted, so the
    table-wide key uniqueness is the loader's guarantee; this catches what a load brings)."""
    conn = memory_cursor()
    try:
        path = settings.bronze_events_path
        latest = conn.execute(f"select max(loaded_at) from delta_scan('{path}')").fetchone()[0]
        # A constant, not a subquery: the files' statistics on loaded_at then skip every file
        # of an earlier load (with the subquery, every file's loaded_at was read).
        return conn.execute(
            f"select * from delta_scan('{path}') where loaded_at = ?", [latest]
        ).df()
    finally:
        conn.close()


def check_latest_load(settings: Settings) -> QualityResult:
    """The bronze suite on the latest load, against the tenants registered now."""
    return check_events(latest_load(settings), TenantRegistry(settings.tenants_file).tenants())
