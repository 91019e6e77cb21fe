"""Per tenant, every session active in the 30 minutes up to the tenant's latest event: the
probability that its visitor orders within 24 hours of the session's start, from the tenant's
latest purchase-propensity model (`lakepulse predict`). The model only materializes what
`lakepulse.analytics.propensity.score` returns."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa

from lakepulse.analytics import propensity
from lakepulse.warehouse.prediction_tables import load_propensity_models

ACTIVE = pd.Timedelta(minutes=30)

SCHEMA = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("user_key", pa.string()),
        ("session_id", pa.string()),
        ("session_start_at", pa.timestamp("us", tz="UTC")),
        ("session_end_at", pa.timestamp("us", tz="UTC")),
        ("propensity", pa.float64()),
        ("model_fitted_at", pa.timestamp("us", tz="UTC")),
    ]
)


def model(dbt, session):
    dbt.config(materialized="table")
    home = Path(os.environ.get("LAKEPULSE_HOME", "../.lakepulse"))
    models = load_propensity_models(home / "models" / "propensity")
    clocks = dbt.ref("int_tenant_clocks").df()
    features = dbt.ref("int_session_features")
    frames = []
    for tenant_id, judged_at in zip(clocks["tenant_id"], clocks["judged_at"], strict=True):
        if tenant_id not in models:
            continue
        since = (pd.Timestamp(judged_at) - ACTIVE).isoformat()
        active = features.filter(
            f"tenant_id = '{tenant_id}' and session_end_at >= '{since}'::timestamptz"
        ).df()
        if active.empty:
            continue
        kept = models[tenant_id]
        active["propensity"] = propensity.score(kept["model"], active)
        active["model_fitted_at"] = kept["fitted_at"]
        frames.append(active[SCHEMA.names])
    if not frames:
        return SCHEMA.empty_table()
    return pa.Table.from_pandas(pd.concat(frames), schema=SCHEMA, preserve_index=False)
