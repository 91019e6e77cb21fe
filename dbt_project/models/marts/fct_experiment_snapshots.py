"""Every run's statistics of every experiment, kept forever (per tenant x experiment x variation
x metric x snapshot).

Why a history: an always-valid guarantee is about the whole sequence of looks. Keeping each
minute's result lets the reported always-valid p-value be the running minimum and the
confidence sequence the running intersection over all snapshots so far, which is what stays
valid when someone looks every minute.

This model only materializes: it reads the arms' sufficient statistics and the latest
snapshot, and writes what `lakepulse.analytics.experiments.snapshot` computes (the analysis,
unit-tested in the library) with the columns of this model's YAML contract.

`full_refresh: false`: a `dbt build --full-refresh` (or the replay job) rebuilds every mart but
keeps this history, because it cannot be recomputed from the events.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from lakepulse.analytics import experiments


def model(dbt, session):
    # A history that only grows (append, not the project's replace_scope); a column it gains
    # is left out of the old table rather than stopping the build, as before the project set
    # `on_schema_change: fail` for the marts.
    dbt.config(
        materialized="incremental",
        incremental_strategy="append",
        on_schema_change="ignore",
        full_refresh=False,
    )
    arms = dbt.ref("int_experiment_arm_moments").df()
    previous: dict[tuple, dict] = {}
    if dbt.is_incremental:
        key = ", ".join(experiments.KEY)
        latest = session.sql(
            f"select {', '.join(experiments.KEY + experiments.RUNNING + experiments.SETTINGS)} "
            f"from {dbt.this} "
            f"qualify row_number() over (partition by {key} order by snapshot_at desc) = 1"
        ).df()
        previous = {tuple(r[k] for k in experiments.KEY): r for r in latest.to_dict("records")}
    rows = experiments.snapshot(
        arms.to_dict("records"), previous, pd.Timestamp.now(tz="UTC").to_pydatetime()
    )
    return pa.Table.from_pylist(rows, schema=experiments.snapshot_schema())
