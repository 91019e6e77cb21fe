"""Per tenant, every session that ended in the 24 hours up to the tenant's latest event (`active`
when in the last 30 minutes): the probability that its visitor orders within 24 hours of the
session's start, from the tenant's latest purchase-propensity model (`lakepulse predict`). The
triggers' `min_propensity` / `max_propensity` read each user's latest session here. The model
only materializes what `lakepulse.analytics.propensity.score` returns."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa

from lakepulse.analytics import propensity
from lakepulse.warehouse.prediction_tables import load_propensity_models

ACTIVE = pd.Timedelta(minutes=30)
RECENT = pd.Timedelta(hours=24)

SCHEMA = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("user_key", pa.string()),
        ("session_id", pa.string()),
        ("session_start_at", pa.timestamp("us", tz="UTC")),
        ("session_end_at", pa.timestamp("us", tz="UTC")),
        ("active", pa.bool_()),
        ("propensity", pa.float64()),
        ("model_fitted_at", pa.timestamp("us", tz="UTC")),
    ]
)


def model(dbt, session):
    dbt.config(materialized="table")
    home = Path(os.environ.get("LAKEPULSE_HOME", "../.lakepulse"))
    models = load_propensity_models(home / "models" / "propensity", propensity.signature())
    clocks = dbt.ref("int_session_clocks").df()
    features = dbt.ref("int_session_features")
    frames = []
    for tenant_id, judged_at in zip(clocks["tenant_id"], clocks["judged_at"], strict=True):
        if tenant_id not in models:
            continue
        since = (pd.Timestamp(judged_at) - RECENT).isoformat()
        recent = features.filter(
            f"tenant_id = '{tenant_id}' and session_end_at >= '{since}'::timestamptz"
        ).df()
        if recent.empty:
            continue
        kept = models[tenant_id]
        recent["active"] = recent["session_end_at"] >= pd.Timestamp(judged_at) - ACTIVE
        recent["propensity"] = propensity.score(kept["model"], recent)
        recent["model_fitted_at"] = kept["fitted_at"]
        frames.append(recent[SCHEMA.names])
    if not frames:
        return SCHEMA.empty_table()
    return pa.Table.from_pandas(pd.concat(frames), schema=SCHEMA, preserve_index=False)
