"""Expectations for the bronze event table ``raw.events``.

They restate the contract the collector enforces, so a bug anywhere upstream (collector,
loader, a manual write) is caught before dbt builds marts on top of it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from ingestion.contract import EVENT_TYPES
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
