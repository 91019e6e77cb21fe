"""The single Dagster entry point (``workspace.yaml`` loads this module).

Loading it has no side effects (``tests/integration/test_definitions_load.py``): every Dagster
process loads these definitions (webserver, daemon, each run and sensor evaluation), so the
load only reads: the manifest (parsed in memory when there is no fresh one), the triggers
file, the settings. Directories and source tables are made when a run starts
(:meth:`LakepulseResource.setup_for_execution`), the manifest on disk by the builds.

Loading them also stays light (``tests/integration/test_definitions_load.py``): the code
server keeps them in memory for as long as the platform runs, so the modules below import the
workflows, and with them pyarrow, DuckDB, pandas, deltalake and psycopg, only in the bodies of
the assets, checks, ops and resources that run them (in a run's process). Only a parse in
memory, when the data directory has no fresh manifest, imports DuckDB (dbt-duckdb's adapter)."""

from __future__ import annotations

import dagster as dg
from dagster_dlt import DagsterDltResource

from lakepulse.core.settings import Settings
from lakepulse.warehouse.dbt import parsed_manifest
from lakepulse.warehouse.tiers import stale_after_s, tier_plan_of
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
from orchestration.schedules import (
    build_compaction_schedule,
    predictions_schedule,
    retention_schedule,
)
from orchestration.sensors import (
    build_landing_sensor,
    build_retention_rebuild_sensor,
    build_worker_sensor,
)


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Everything lakepulse runs, for one data directory (``LAKEPULSE_HOME``)."""
    settings = settings or Settings.from_env()
    project = dbt_project_for(settings)
    manifest = parsed_manifest(settings)
    bronze = build_bronze_assets(settings)
    models = build_dbt_assets(project, settings, manifest)
    plan = tier_plan_of(manifest)
    served = plan.served
    serving = [build_publish_asset(settings.pg_url, served)] if settings.pg_url else []
    pipeline_assets = [triggers_yml, bronze, models, *serving, *build_trigger_assets(settings)]
    freshness = build_freshness_checks({mart: stale_after_s(plan.models[mart]) for mart in served})
    ingest_and_build = build_ingest_and_build_job(*pipeline_assets, leave_out=tuple(freshness))
    replay = build_replay_job(models, *serving)
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
            replay,
            retention_job,
            compaction_job,
            erase_user_job,
            predict_job,
            pipeline_worker_job,
        ],
        schedules=[retention_schedule, build_compaction_schedule(settings), predictions_schedule],
        sensors=[
            build_worker_sensor(pipeline_worker_job, settings),
            build_landing_sensor(ingest_and_build.name, settings),
            build_freshness_sensor(freshness),
            build_retention_rebuild_sensor(replay.name),
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
