"""Expectations for the key marts: what a BI user would take for a bug if it were false.

Rates lie in [0, 1]; a funnel never gains users from one step to the next; every cohort keeps
100 % of its users in period 0; a sliding window never has more converting visitors than
visitors. Derived columns (the previous step's users, period-0 rows) are added in pandas so
each rule is one plain expectation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lakepulse.core.settings import Settings
from quality.runner import QualityResult, run_suite

if TYPE_CHECKING:  # imported when a suite runs: Dagster's definitions read MART_SUITES' names
    import duckdb
    import pandas as pd


def _ex():
    import great_expectations as gx

    return gx.expectations


def check_funnel_conversion(df: pd.DataFrame) -> QualityResult:
    df = df.sort_values(
        ["tenant_id", "funnel_id", "entry_date", "channel", "device_class", "step_number"]
    )
    keys = ["tenant_id", "funnel_id", "entry_date", "channel", "device_class"]
    df = df.assign(previous_step_users=df.groupby(keys, dropna=False)["users"].shift(1))
    ex = _ex()
    return run_suite(
        "mart_funnel_conversion",
        lambda: [
            ex.ExpectColumnValuesToBeBetween(column="step_conversion", min_value=0, max_value=1),
            ex.ExpectColumnValuesToBeBetween(column="overall_conversion", min_value=0, max_value=1),
            ex.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="previous_step_users",
                column_B="users",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
        ],
        df,
    )


def check_cohort_retention(df: pd.DataFrame) -> QualityResult:
    df = df.assign(period_zero_retention=df["user_retention"].where(df["period_number"] == 0))
    ex = _ex()
    return run_suite(
        "mart_cohort_retention",
        lambda: [
            ex.ExpectColumnValuesToBeBetween(column="user_retention", min_value=0, max_value=1),
            ex.ExpectColumnValuesToBeBetween(
                column="period_zero_retention", min_value=1, max_value=1
            ),
        ],
        df,
    )


def check_conversion_windows(df: pd.DataFrame) -> QualityResult:
    ex = _ex()
    return run_suite(
        "mart_conversion_windows",
        lambda: [
            ex.ExpectColumnValuesToBeBetween(column="conversion_rate", min_value=0, max_value=1),
            ex.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="visitors", column_B="converting_visitors", or_equal=True
            ),
        ],
        df,
    )


MART_SUITES = {
    "mart_funnel_conversion": check_funnel_conversion,
    "mart_cohort_retention": check_cohort_retention,
    "mart_conversion_windows": check_conversion_windows,
}


# What each mart's suite reads: recent rows only, so a check stays cheap as history grows.
MART_CHECK_QUERIES = {
    "mart_funnel_conversion": "select * from marts.mart_funnel_conversion "
    "where entry_date >= (select max(entry_date) - 7 from marts.mart_funnel_conversion)",
    "mart_cohort_retention": "select * from marts.mart_cohort_retention",
    "mart_conversion_windows": "select * from marts.mart_conversion_windows "
    "where window_end_at >= (select max(window_end_at) - interval 1 day "
    "from marts.mart_conversion_windows)",
}


def check_mart(
    settings: Settings,
    mart: str,
    source: Path | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> QualityResult:
    """Run ``mart``'s suite on the rows it reads, from the read replica (never the live
    warehouse, which a build may hold), or from ``source`` (the pipeline worker, which owns
    the warehouse between its builds, checks a tier's marts there before publishing them), or
    through ``connection``, a connection to the warehouse that its owner keeps open (DuckDB
    opens a file once a process)."""
    from lakepulse.core.duck import connect

    if connection is not None:
        conn = connection.cursor()
    else:
        conn = connect(source or settings.replica_path, read_only=True, delta=False)
    try:
        df = conn.sql(MART_CHECK_QUERIES[mart]).df()
    finally:
        conn.close()
    return MART_SUITES[mart](df)
