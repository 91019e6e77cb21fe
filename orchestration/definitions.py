"""The single Dagster entry point (``workspace.yaml`` loads this module)."""

from __future__ import annotations

import dagster as dg
from dagster_dlt import DagsterDltResource

from lakepulse.config import Settings, disable_telemetry
from orchestration.assets.bronze import build_bronze_assets, landing_log_spec
from orchestration.assets.dbt import build_dbt_assets
from orchestration.assets.serving import build_publish_asset
from orchestration.checks import bronze_events_quality
from orchestration.jobs import build_ingest_and_build_job
from orchestration.resources import LakepulseResource, dbt_project_for, dbt_resource
from orchestration.sensors import build_landing_sensor


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Everything lakepulse runs, for one data directory (``LAKEPULSE_HOME``)."""
    disable_telemetry()
    settings = settings or Settings.from_env()
    settings.ensure_dirs()
    project = dbt_project_for(settings)
    bronze = build_bronze_assets(settings)
    models = build_dbt_assets(project, settings)
    pipeline_assets = [bronze, models]
    if settings.pg_url:
        pipeline_assets.append(build_publish_asset(settings.pg_url))
    ingest_and_build = build_ingest_and_build_job(*pipeline_assets)
    return dg.Definitions(
        assets=[landing_log_spec, *pipeline_assets],
        asset_checks=[bronze_events_quality],
        jobs=[ingest_and_build],
        sensors=[build_landing_sensor(ingest_and_build, settings)],
        resources={
            "dlt": DagsterDltResource(),
            "dbt": dbt_resource(project),
            "lakepulse": LakepulseResource(home=str(settings.home)),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
