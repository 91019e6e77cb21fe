"""Sensors: the minute cadence of the pipeline."""

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ingestion.landing import LandingLog
from lakepulse.config import Settings

ACTIVE = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def build_landing_sensor(job: UnresolvedAssetJobDefinition, settings: Settings):
    landing = LandingLog(settings.landing_dir)

    @sensor(
        name="landing_log_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Every 60 s: when the collector has published new landing files, load them "
        "into bronze and rebuild the marts. Skips while a pipeline run is still going.",
    )
    def landing_log_sensor(context: SensorEvaluationContext):
        latest = landing.latest_name()
        if latest is None:
            return SkipReason(f"no landing files yet in {settings.landing_dir}")
        if context.cursor and latest <= context.cursor:
            return SkipReason(f"no new landing files since {context.cursor}")
        active = context.instance.get_run_records(
            RunsFilter(job_name=job.name, statuses=ACTIVE), limit=1
        )
        if active:
            return SkipReason(
                f"run {active[0].dagster_run.run_id[:8]} is still in progress; new files wait for the next tick"
            )
        return SensorResult(run_requests=[RunRequest(run_key=latest)], cursor=latest)

    return landing_log_sensor
