"""The table of customer-lifetime model fits, which dbt reads (source ``predictions.clv_fits``)
but does not write: ``lakepulse predict`` and the daily Dagster asset append one row per tenant
and fit (:mod:`lakepulse.operations.predict`). Every build ensures it exists, like the trigger
tables."""

from __future__ import annotations

import pyarrow as pa

from lakepulse.core.settings import Settings

CLV_FITS_SCHEMA = pa.schema(
    [
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("fitted_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("observation_end", pa.date32(), nullable=False),
        ("customers", pa.int64()),
        ("repeat_customers", pa.int64()),
        ("r", pa.float64()),
        ("alpha", pa.float64()),
        ("a", pa.float64()),
        ("b", pa.float64()),
        ("p", pa.float64()),
        ("q", pa.float64()),
        ("gamma", pa.float64()),
        ("log_likelihood", pa.float64()),
        ("gg_log_likelihood", pa.float64()),
        ("holdout_days", pa.int64()),
        ("holdout_customers", pa.int64()),
        ("holdout_predicted_orders", pa.float64()),
        ("holdout_actual_orders", pa.int64()),
        ("holdout_mae", pa.float64()),
        ("holdout_ratio", pa.float64()),
        ("fit_seconds", pa.float64()),
    ]
)
"""One row per tenant and fit; the columns of ``mart_clv_model``."""


def ensure_prediction_tables(settings: Settings) -> None:
    """Create the (empty) fits table when missing, so dbt's source finds it before any fit."""
    from deltalake import write_deltalake

    path = settings.clv_fits_path
    if not (path / "_delta_log").exists():
        path.mkdir(parents=True, exist_ok=True)
        try:
            write_deltalake(str(path), CLV_FITS_SCHEMA.empty_table(), mode="append")
        except Exception:
            if not (path / "_delta_log").exists():  # not a concurrent creation
                raise


def append_fits(settings: Settings, rows: list[dict]) -> None:
    """Append fits (dicts with the columns of :data:`CLV_FITS_SCHEMA`) in one Delta commit."""
    from deltalake import write_deltalake

    ensure_prediction_tables(settings)
    if rows:
        table = pa.Table.from_pylist(rows, schema=CLV_FITS_SCHEMA)
        write_deltalake(str(settings.clv_fits_path), table, mode="append")
