"""``lakepulse predict`` and the daily Dagster assets: fit every tenant's models now.

- Customer lifetime (:mod:`lakepulse.analytics.clv`, :func:`fit_predictions`): the fits are
  appended to the table dbt publishes as ``mart_clv_model``; ``mart_customer_predictions``
  applies each tenant's latest fit to every customer at each build, so a customer's figures
  follow her orders between the daily fits.
- Purchase propensity (:mod:`lakepulse.analytics.propensity`, :func:`fit_propensity`): the
  holdout accuracy is appended to the table dbt publishes as ``mart_model_accuracy`` and the
  model trained on every labelled session is kept per tenant; ``mart_visitor_propensity``
  scores the sessions active in the last 30 minutes with it at each build.

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

from lakepulse.analytics import clv, propensity
from lakepulse.core.duck import connect
from lakepulse.core.locks import exclusive_lock
from lakepulse.core.settings import Settings
from lakepulse.warehouse.prediction_tables import (
    append_fits,
    append_propensity_fits,
    save_propensity_model,
)

ORDERS = """
select tenant_id, user_key as customer_id, order_date, revenue
from intermediate.int_customer_orders
"""
CLOCKS = """
select tenant_id, cast(timezone('UTC', judged_at) as date) as observation_end
from intermediate.int_tenant_clocks
"""
SESSIONS = "select * from intermediate.int_session_features"
ORDER_TIMES = "select tenant_id, user_key, ordered_at from intermediate.int_customer_orders"
NOW = "select tenant_id, judged_at from intermediate.int_tenant_clocks"
CAMPAIGNS = """
select tenant_id, campaign, status, actual_revenue_7d, forecast_revenue_7d, within_interval, note
from marts.mart_campaign_forecast
order by tenant_id, launched_at
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


def _query(
    settings: Settings, needs: set[str], *queries: str, schema: str = "intermediate"
) -> list:
    """Run ``queries`` on the warehouse (read-only) once it holds the models ``needs`` (in
    ``schema``), between two of the pipeline's builds (the pipeline lock): the pipeline worker
    keeps the warehouse open while it holds the lock."""
    if not settings.warehouse_path.exists():
        raise NothingToFit("no warehouse yet: run `lakepulse ingest` and `lakepulse build` first")
    with exclusive_lock(settings.pipeline_lock_path):
        return _query_warehouse(settings, needs, queries, schema)


def _query_warehouse(settings: Settings, needs: set[str], queries, schema: str) -> list:
    conn = connect(settings.warehouse_path, read_only=True)
    try:
        tables = {
            row[0]
            for row in conn.execute(
                "select table_name from duckdb_tables() where schema_name = ?", [schema]
            ).fetchall()
        }
        if not needs <= tables:
            raise NothingToFit(
                f"{', '.join(sorted(needs - tables))} not built yet: run `lakepulse build` first"
            )
        return [conn.sql(query).df() for query in queries]
    finally:
        conn.close()


def _read(settings: Settings) -> tuple[pd.DataFrame, dict[str, date]]:
    orders, clocks = _query(settings, {"int_customer_orders", "int_tenant_clocks"}, ORDERS, CLOCKS)
    ends = pd.to_datetime(clocks["observation_end"]).dt.date
    return orders, dict(zip(clocks["tenant_id"], ends, strict=True))


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


@dataclass(frozen=True)
class PropensityResult:
    tenant_id: str
    accuracy: propensity.Accuracy | None
    error: str | None
    seconds: float


def fit_propensity(
    settings: Settings,
    tenants: list[str] | None = None,
    on_tenant: Callable[[PropensityResult], None] | None = None,
) -> list[PropensityResult]:
    """Per tenant with sessions (or only ``tenants``): label the sessions whose 24 hours are
    over by the tenant's clock, measure a model trained before the last labelled day on that
    day, keep the model trained on every labelled session, and append the accuracy (a row per
    calibration bin) in one commit. ``error`` says why a tenant has no model."""
    sessions, orders, clocks = _query(
        settings,
        {"int_session_features", "int_customer_orders", "int_tenant_clocks"},
        SESSIONS,
        ORDER_TIMES,
        NOW,
    )
    now = dict(zip(clocks["tenant_id"], clocks["judged_at"], strict=True))
    fitted_at = datetime.now(UTC)
    results, rows = [], []
    for tenant_id, tenant_sessions in sessions.groupby("tenant_id", sort=True):
        if tenants is not None and tenant_id not in tenants:
            continue
        started = time.perf_counter()
        tenant_sessions = tenant_sessions.reset_index(drop=True)
        tenant_sessions[propensity.LABEL] = propensity.label_sessions(
            tenant_sessions, orders[orders["tenant_id"] == tenant_id]
        )
        try:
            fitted = propensity.fit_tenant(tenant_sessions, pd.Timestamp(now[tenant_id]))
        except propensity.PropensityError as err:
            result = PropensityResult(tenant_id, None, str(err), time.perf_counter() - started)
        else:
            save_propensity_model(
                settings, tenant_id, fitted.model, fitted_at, propensity.signature()
            )
            seconds = time.perf_counter() - started
            result = PropensityResult(tenant_id, fitted.accuracy, None, seconds)
            rows += accuracy_rows(tenant_id, fitted_at, now[tenant_id], result)
        results.append(result)
        if on_tenant:
            on_tenant(result)
    append_propensity_fits(settings, rows)
    return results


def accuracy_rows(
    tenant_id: str, fitted_at: datetime, observed_until, result: PropensityResult
) -> list[dict]:
    """The ``mart_model_accuracy`` rows of one fit: one per calibration bin."""
    accuracy = result.accuracy
    assert accuracy is not None
    common = {
        "tenant_id": tenant_id,
        "model": "purchase_propensity",
        "fitted_at": fitted_at,
        "observed_until": pd.Timestamp(observed_until).to_pydatetime(),
        "train_sessions": accuracy.train_sessions,
        "holdout_sessions": accuracy.holdout_sessions,
        "holdout_orders": accuracy.holdout_orders,
        "auc": accuracy.auc,
        "base_rate": accuracy.base_rate,
        "fit_seconds": result.seconds,
    }
    return [{**common, **row} for row in accuracy.calibration]


@dataclass(frozen=True)
class CampaignAccuracy:
    """How one tenant's campaign forecasts did (``mart_campaign_forecast``: no fit step, the
    build forecasts every campaign from the tenant's campaigns ended before it)."""

    tenant_id: str
    campaigns: int
    backtested: int
    """Ended campaigns with a forecast made while they ran, beside their actual day-7 revenue."""
    inside: int
    """Of those, the ones whose day-7 revenue fell inside the 80 % interval."""
    median_error: float | None
    """Median absolute error of those forecasts, as a share of the actual revenue."""
    running: int
    """Running campaigns forecast now."""
    note: str | None
    """Why the latest campaign has no forecast (too few ended campaigns, say)."""

    @property
    def coverage(self) -> float | None:
        return self.inside / self.backtested if self.backtested else None


def campaign_accuracy(
    settings: Settings, tenants: list[str] | None = None
) -> list[CampaignAccuracy]:
    """Per tenant with campaigns (or only ``tenants``): the campaign forecasts' backtest as the
    last build left it in ``marts.mart_campaign_forecast``."""
    [campaigns] = _query(settings, {"mart_campaign_forecast"}, CAMPAIGNS, schema="marts")
    results = []
    for tenant_id, rows in campaigns.groupby("tenant_id", sort=True):
        if tenants is not None and tenant_id not in tenants:
            continue
        tested = rows[(rows["status"] == "ended") & rows["forecast_revenue_7d"].notna()]
        errors = (tested["forecast_revenue_7d"] - tested["actual_revenue_7d"]).abs() / tested[
            "actual_revenue_7d"
        ].clip(lower=1e-9)
        running = rows[(rows["status"] == "running") & rows["forecast_revenue_7d"].notna()]
        notes = rows["note"].dropna()
        results.append(
            CampaignAccuracy(
                tenant_id=tenant_id,
                campaigns=len(rows),
                backtested=len(tested),
                inside=int(tested["within_interval"].fillna(False).astype(bool).sum()),
                median_error=float(errors.median()) if len(tested) else None,
                running=len(running),
                note=str(notes.iloc[-1]) if len(notes) and not len(tested) else None,
            )
        )
    return results
