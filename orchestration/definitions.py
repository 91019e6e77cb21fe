"""The single Dagster entry point (``workspace.yaml`` loads this module)."""

from __future__ import annotations

import dagster as dg
from dagster_dlt import DagsterDltResource

from lakepulse.core.settings import Settings
from lakepulse.operations.rebuild import ensure_sources
from lakepulse.warehouse.publish import served_marts
from orchestration.assets.bronze import build_bronze_assets, landing_log_spec
from orchestration.assets.dbt import build_dbt_assets
from orchestration.assets.maintenance import compaction, retention
from orchestration.assets.predictions import clv_fits, propensity_fits
from orchestration.assets.serving import build_publish_asset
from orchestration.assets.triggers import build_trigger_assets, triggers_yml, triggers_yml_valid
from orchestration.checks import (
    bronze_events_quality,
    build_freshness_checks,
    build_freshness_sensor,
    build_mart_quality_checks,
)
from orchestration.jobs import (
    build_ingest_and_build_job,
    build_replay_job,
    compaction_job,
    erase_user_job,
    pipeline_worker_job,
    predict_job,
    retention_job,
)
from orchestration.resources import LakepulseResource, dbt_project_for, dbt_resource
from orchestration.schedules import compaction_schedule, predictions_schedule, retention_schedule
from orchestration.sensors import build_landing_sensor, build_worker_sensor


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Everything lakepulse runs, for one data directory (``LAKEPULSE_HOME``)."""
    settings = settings or Settings.from_env()
    settings.ensure_dirs()
    ensure_sources(settings)
    project = dbt_project_for(settings)
    bronze = build_bronze_assets(settings)
    models = build_dbt_assets(project, settings)
    served = served_marts(project.manifest_path)
    serving = [build_publish_asset(settings.pg_url, served)] if settings.pg_url else []
    pipeline_assets = [triggers_yml, bronze, models, *serving, *build_trigger_assets(settings)]
    freshness = build_freshness_checks(served)
    ingest_and_build = build_ingest_and_build_job(*pipeline_assets, leave_out=tuple(freshness))
    return dg.Definitions(
        assets=[
            landing_log_spec,
            *pipeline_assets,
            retention,
            compaction,
            clv_fits,
            propensity_fits,
        ],
        asset_checks=[
            triggers_yml_valid,
            bronze_events_quality,
            *build_mart_quality_checks(),
            *freshness,
        ],
        jobs=[
            ingest_and_build,
            build_replay_job(models, *serving),
            retention_job,
            compaction_job,
            erase_user_job,
            predict_job,
            pipeline_worker_job,
        ],
        schedules=[retention_schedule, compaction_schedule, predictions_schedule],
        sensors=[
            build_worker_sensor(pipeline_worker_job, settings),
            build_landing_sensor(ingest_and_build, settings),
            build_freshness_sensor(freshness),
        ],
        # Every job in one process, the implicit one the freshness sensor launches included: a
        # subprocess per step re-imports Dagster and our code (~5-10 s of CPU each time).
        executor=dg.in_process_executor,
        resources={
            "dlt": DagsterDltResource(),
            "dbt": dbt_resource(project),
            "lakepulse": LakepulseResource(home=str(settings.home)),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
