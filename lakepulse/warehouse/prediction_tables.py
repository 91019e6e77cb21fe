"""The tables of model fits that dbt reads (sources ``predictions.clv_fits`` and
``predictions.propensity_fits``) but does not write: ``lakepulse predict`` and the daily Dagster
asset append to them (:mod:`lakepulse.operations.predict`). Every build ensures they exist,
like the trigger tables."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from lakepulse.core.settings import Settings
from lakepulse.warehouse.trigger_tables import ensure_delta_table

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


FITS_STATS = ("fitted_at",)
"""The fits' columns with file statistics (:mod:`lakepulse.core.delta_tables`)."""

PROPENSITY_FITS_SCHEMA = pa.schema(
    [
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("fitted_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ("observed_until", pa.timestamp("us", tz="UTC")),
        ("train_sessions", pa.int64()),
        ("holdout_sessions", pa.int64()),
        ("holdout_orders", pa.int64()),
        ("auc", pa.float64()),
        ("base_rate", pa.float64()),
        ("bin", pa.int64()),
        ("predicted_low", pa.float64()),
        ("predicted_high", pa.float64()),
        ("predicted_rate", pa.float64()),
        ("observed_rate", pa.float64()),
        ("sessions", pa.int64()),
        ("fit_seconds", pa.float64()),
    ]
)
"""One row per tenant, fit and calibration bin; the columns of ``mart_model_accuracy``."""


def ensure_prediction_tables(settings: Settings) -> None:
    """Create the (empty) fits tables when missing, so dbt's sources find them before a fit."""
    ensure_delta_table(settings.clv_fits_path, CLV_FITS_SCHEMA, FITS_STATS)
    ensure_delta_table(settings.propensity_fits_path, PROPENSITY_FITS_SCHEMA, FITS_STATS)


def _append(path, schema: pa.Schema, rows: list[dict]) -> None:
    from deltalake import write_deltalake

    if rows:
        write_deltalake(str(path), pa.Table.from_pylist(rows, schema=schema), mode="append")


def append_fits(settings: Settings, rows: list[dict]) -> None:
    """Append fits (dicts with the columns of :data:`CLV_FITS_SCHEMA`) in one Delta commit."""
    ensure_prediction_tables(settings)
    _append(settings.clv_fits_path, CLV_FITS_SCHEMA, rows)


def append_propensity_fits(settings: Settings, rows: list[dict]) -> None:
    """Append accuracy rows (:data:`PROPENSITY_FITS_SCHEMA`) in one Delta commit."""
    ensure_prediction_tables(settings)
    _append(settings.propensity_fits_path, PROPENSITY_FITS_SCHEMA, rows)


MODEL_SUFFIX = ".joblib"


def save_propensity_model(
    settings: Settings, tenant_id: str, model, fitted_at, signature: dict | None = None
) -> Path:
    """Keep a tenant's trained propensity model with its ``signature`` (what it was trained
    on), replacing the previous one by rename, so a reader never loads half a file. Only
    lakepulse writes this directory: the files are pickles, loaded by
    :func:`load_propensity_models`."""
    import joblib

    directory = settings.propensity_models_dir
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{tenant_id}{MODEL_SUFFIX}"
    tmp = directory / f".{tenant_id}.{os.getpid()}.tmp"
    joblib.dump({"model": model, "fitted_at": fitted_at, "signature": signature}, tmp)
    os.replace(tmp, target)
    return target


def load_propensity_models(directory: Path, signature: dict | None = None) -> dict[str, dict]:
    """Each tenant's latest propensity model: ``{tenant: {"model", "fitted_at", ...}}``. With
    ``signature``, only the models trained with it; a file that does not load is left out too
    (the tenant is scored again after its next fit)."""
    import joblib

    if not directory.exists():
        return {}
    models = {}
    for path in sorted(directory.glob(f"*{MODEL_SUFFIX}")):
        try:
            kept = joblib.load(path)
        except Exception:
            continue
        if signature is not None and kept.get("signature") != signature:
            continue
        models[path.name.removesuffix(MODEL_SUFFIX)] = kept
    return models
