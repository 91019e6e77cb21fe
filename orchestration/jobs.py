"""Jobs: what the sensor and schedules launch."""

from __future__ import annotations

from dagster import AssetsDefinition, AssetSelection, define_asset_job

PIPELINE_TAG = "lakepulse/pipeline"
"""Runs carrying this tag never overlap (a run-queue limit in dagster.yaml, and the sensor)."""


def build_ingest_and_build_job(bronze: AssetsDefinition):
    return define_asset_job(
        name="ingest_and_build",
        description="Load new landing files into bronze, then dbt build everything downstream.",
        selection=AssetSelection.assets(bronze).downstream(),
        tags={PIPELINE_TAG: "minute"},
    )
