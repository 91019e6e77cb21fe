"""Jobs: what the sensor, the schedules and operators launch. Every job that writes the lake
or the warehouse carries the pipeline tag, so none overlaps another (run-queue limit)."""

from __future__ import annotations

from dagster import (
    AssetChecksDefinition,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    define_asset_job,
    in_process_executor,
    job,
)

from lakepulse.core.dagster_instance import PIPELINE_TAG, WORKER_TAG
from orchestration.ops import erase_user_op, pipeline_worker_op

# The pipeline worker's runs carry WORKER_TAG (one at a time), not PIPELINE_TAG: a worker run
# lasts half an hour, and the jobs that write the lake take turns with its cycles through the
# pipeline lock instead.


def build_ingest_and_build_job(
    *assets: AssetsDefinition, leave_out: tuple[AssetChecksDefinition, ...] = ()
):
    """Everything the minute cadence refreshes: bronze, every dbt node (seeds included: dbt
    unit tests read them) and, when configured, the PostgreSQL publish, with their checks but
    those of ``leave_out`` (the freshness checks: their own sensor evaluates them, and in the
    run they would only say the marts just built are fresh)."""
    return define_asset_job(
        name="ingest_and_build",
        description="Load new landing files into bronze, dbt build the models, publish the marts.",
        selection=AssetSelection.assets(*assets) - AssetSelection.checks(*leave_out),
        tags={PIPELINE_TAG: "minute"},
        # One process for the whole run: a subprocess per step re-imports Dagster, dlt and dbt
        # (~5-10 s each), which the minute cadence cannot afford. Steps run in dependency order.
        executor_def=in_process_executor,
    )


def build_replay_job(dbt_models: AssetsDefinition, *downstream: AssetsDefinition):
    """Every mart rebuilt from bronze (dbt --full-refresh), then republished."""
    return define_asset_job(
        name="replay_marts",
        description="Rebuild every mart from bronze with a dbt full refresh, then republish. "
        "The experiment snapshot history is kept (it cannot be recomputed).",
        selection=AssetSelection.assets(dbt_models, *downstream),
        config={"ops": {dbt_models.op.name: {"config": {"full_refresh": True}}}},
        tags={PIPELINE_TAG: "replay"},
        executor_def=in_process_executor,
    )


def maintenance_job(name: str, key: list[str], description: str):
    """One maintenance asset as a job of its own, serialised with the minute runs."""
    return define_asset_job(
        name=name,
        description=description,
        selection=AssetSelection.keys(AssetKey(key)),
        tags={PIPELINE_TAG: name},
        executor_def=in_process_executor,
    )


retention_job = maintenance_job(
    "retention",
    ["maintenance", "retention"],
    "Apply the retention policies (see the maintenance/retention asset).",
)
compaction_job = maintenance_job(
    "compaction", ["maintenance", "compaction"], "OPTIMIZE and VACUUM the bronze tables."
)
predict_job = define_asset_job(
    name="predict",
    description="Fit every tenant's customer lifetime and purchase-propensity models (same as "
    "`lakepulse predict`).",
    selection=AssetSelection.keys(
        AssetKey(["predictions", "clv_fits"]), AssetKey(["predictions", "propensity_fits"])
    ),
    tags={PIPELINE_TAG: "predict"},
    executor_def=in_process_executor,
)


@job(
    name="erase_user",
    description="Erase one user everywhere (config: tenant_id, user_id); same as `lakepulse "
    "erase`. An audit record with a keyed hash of the user id is kept.",
    tags={PIPELINE_TAG: "erasure"},
    executor_def=in_process_executor,
)
def erase_user_job() -> None:
    erase_user_op()


@job(
    name="pipeline_worker",
    description="The long-lived pipeline worker (`lakepulse worker`): every few seconds, load "
    "the new landing files, check them, build, publish and fire the live tier; the session "
    "and daily tiers on their cadence. The sensor pipeline_worker_sensor keeps one running and "
    "starts the next when a run ends (every 30 minutes) or its worker stops beating.",
    tags={WORKER_TAG: "worker"},
    executor_def=in_process_executor,
)
def pipeline_worker_job() -> None:
    pipeline_worker_op()
