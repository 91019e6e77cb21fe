"""``lakepulse predict`` and the daily Dagster asset: fit every tenant's customer-lifetime
models now (:mod:`lakepulse.analytics.clv`) and append the fits to the table dbt publishes as
``mart_clv_model``. ``mart_customer_predictions`` applies each tenant's latest fit to every
customer at each build, so a customer's figures follow her orders between the daily fits.

Each tenant is observed up to its own "now", the day of its latest event
(``int_tenant_clocks``, the triggers' clock), never the wall clock: a replay or a backlog fits
exactly as a live run would have. The orders are ``int_customer_orders`` (the first completion
of each order, by stitched user), read from the warehouse: run it serialised with the builds
(the Dagster job carries the pipeline tag)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd

from lakepulse.analytics import clv
from lakepulse.core.duck import connect
from lakepulse.core.settings import Settings
from lakepulse.warehouse.prediction_tables import append_fits

ORDERS = """
select tenant_id, user_key as customer_id, order_date, revenue
from intermediate.int_customer_orders
"""
CLOCKS = """
select tenant_id, cast(timezone('UTC', judged_at) as date) as observation_end
from intermediate.int_tenant_clocks
"""


class NothingToFit(RuntimeError):
    """The warehouse has no orders model yet: build first."""


@dataclass(frozen=True)
class TenantResult:
    tenant_id: str
    observation_end: date | None
    model: clv.TenantModel | None
    error: str | None
    seconds: float


def _read(settings: Settings) -> tuple[pd.DataFrame, dict[str, date]]:
    if not settings.warehouse_path.exists():
        raise NothingToFit("no warehouse yet: run `lakepulse ingest` and `lakepulse build` first")
    conn = connect(settings.warehouse_path, read_only=True)
    try:
        tables = {
            row[0]
            for row in conn.execute(
                "select table_name from duckdb_tables() where schema_name = 'intermediate'"
            ).fetchall()
        }
        if not {"int_customer_orders", "int_tenant_clocks"} <= tables:
            raise NothingToFit("the orders are not modelled yet: run `lakepulse build` first")
        orders = conn.sql(ORDERS).df()
        clocks = dict(conn.execute(CLOCKS).fetchall())
    finally:
        conn.close()
    return orders, clocks


def fit_predictions(
    settings: Settings,
    tenants: list[str] | None = None,
    on_tenant: Callable[[TenantResult], None] | None = None,
) -> list[TenantResult]:
    """Fit every tenant with orders (or only ``tenants``), append the successful fits to the
    fits table in one commit, and return each tenant's result (``error`` says why a tenant
    could not be fitted: too few customers, say). ``on_tenant`` hears of each as it is done."""
    orders, clocks = _read(settings)
    fitted_at = datetime.now(UTC)
    results, rows = [], []
    for tenant_id, tenant_orders in orders.groupby("tenant_id", sort=True):
        if tenants is not None and tenant_id not in tenants:
            continue
        started = time.perf_counter()
        end = clocks.get(tenant_id)
        model, error = None, None
        if end is None:
            error = "no clock (no sessions modelled yet)"
        else:
            try:
                model = clv.fit_tenant(tenant_orders, end)
            except clv.FitError as err:
                error = str(err)
        result = TenantResult(tenant_id, end, model, error, time.perf_counter() - started)
        if model is not None:
            rows.append(fit_row(tenant_id, fitted_at, result))
        results.append(result)
        if on_tenant:
            on_tenant(result)
    append_fits(settings, rows)
    return results


def fit_row(tenant_id: str, fitted_at: datetime, result: TenantResult) -> dict:
    """The ``mart_clv_model`` row of one tenant's fit."""
    model = result.model
    assert model is not None
    holdout = model.holdout
    fit = model.fit.as_dict()
    return {
        "tenant_id": tenant_id,
        "fitted_at": fitted_at,
        "observation_end": model.observation_end,
        **fit,
        "holdout_days": holdout.days if holdout else None,
        "holdout_customers": holdout.customers if holdout else None,
        "holdout_predicted_orders": holdout.predicted_orders if holdout else None,
        "holdout_actual_orders": holdout.actual_orders if holdout else None,
        "holdout_mae": holdout.mae if holdout else None,
        "holdout_ratio": holdout.ratio if holdout else None,
        "fit_seconds": result.seconds,
    }
