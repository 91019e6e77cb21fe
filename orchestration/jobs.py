"""Jobs: what the sensor and schedules launch."""

from __future__ import annotations

from dagster import AssetsDefinition, AssetSelection, define_asset_job, in_process_executor

from lakepulse.instance import PIPELINE_TAG


def build_ingest_and_build_job(*assets: AssetsDefinition):
    """Everything the minute cadence refreshes: bronze, every dbt node (seeds included: dbt
    unit tests read them) and, when configured, the PostgreSQL publish."""
    return define_asset_job(
        name="ingest_and_build",
        description="Load new landing files into bronze, dbt build the models, publish the marts.",
        selection=AssetSelection.assets(*assets),
        tags={PIPELINE_TAG: "minute"},
        # One process for the whole run: a subprocess per step re-imports Dagster, dlt and dbt
        # (~5-10 s each), which the minute cadence cannot afford. Steps run in dependency order.
        executor_def=in_process_executor,
    )
