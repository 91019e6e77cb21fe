"""Per tenant and campaign: its day-7 revenue forecast with an 80 % interval from its first 4
hours, learnt from the tenant's campaigns that had ended, and updated in every build as the
campaign runs (its 24-hour signals arrive, other campaigns end). An ended campaign keeps the
last forecast made while it ran beside its actual day-7 revenue. The model only materializes
what `lakepulse.analytics.campaign_forecast.forecast_campaigns` returns (the method,
unit-tested in the library)."""

from __future__ import annotations

import json

import pyarrow as pa

from lakepulse.analytics import campaign_forecast

SCHEMA = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("campaign", pa.string()),
        ("launched_at", pa.timestamp("us", tz="UTC")),
        ("forecast_as_of", pa.timestamp("us", tz="UTC")),
        ("status", pa.string()),
        ("revenue_4h", pa.float64()),
        ("revenue_to_date", pa.float64()),
        ("actual_revenue_7d", pa.float64()),
        ("training_campaigns", pa.int64()),
        ("forecast_revenue_7d", pa.float64()),
        ("forecast_low", pa.float64()),
        ("forecast_high", pa.float64()),
        ("interval_level", pa.float64()),
        ("within_interval", pa.bool_()),
        ("signals", pa.string()),
        ("drivers", pa.string()),
        ("main_driver", pa.string()),
        ("note", pa.string()),
    ]
)


def model(dbt, session):
    dbt.config(materialized="table")
    kpis = dbt.ref("mart_campaign_kpis").df()
    clocks = dbt.ref("int_tenant_clocks").df().rename(columns={"judged_at": "clock"})
    inputs = kpis.merge(clocks, on="tenant_id").assign(
        revenue_4h=lambda f: f["early_velocity_revenue_4h"].astype(float),
        revenue_7d=lambda f: f["revenue_first_7d"].astype(float),
        cart_completion_minutes=lambda f: f["median_cart_completion_s"] / 60.0,
    )
    rows = campaign_forecast.forecast_campaigns(inputs)
    for row in rows:
        drivers = row.pop("drivers")
        row["drivers"] = json.dumps(drivers) if drivers else None
        row["main_driver"] = campaign_forecast.main_driver(drivers) if drivers else None
    return pa.Table.from_pylist(rows, schema=SCHEMA)
