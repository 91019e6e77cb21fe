"""Sensors: the pipeline worker kept alive (the default), the run-per-load cadence it
replaced, stopped by default (for a data directory where no long-lived process may run), and
the rebuild a retention that dropped events asks for. Sensors only start runs: deliveries run
on the worker's own thread, not inside a sensor evaluation. The code server evaluates them:
what they call imports no workflow (pyarrow, DuckDB, pandas)."""

import time

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    EventLogEntry,
    JobDefinition,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset_sensor,
    sensor,
)

from ingestion.landing import LandingLog
from lakepulse.core.heartbeat import worker_beating
from lakepulse.core.settings import Settings
from orchestration.assets.maintenance import REBUILD_NEEDED, RETENTION_KEY

WAITING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING]
"""Runs that have not begun loading: new landing files will be in their load anyway."""


LANDING_SENSOR_INTERVAL_S = 5
"""How often the landing sensor looks (the sensor daemon's own loop is 5 s). A minute cadence
at most: under steady traffic a run starts as soon as the previous one ends, so an event
waits for at most the run in progress, not for a clock tick as well."""


def build_landing_sensor(job_name: str, settings: Settings):
    """Runs job ``job_name`` (an asset job of the same definitions) on new landing files. By
    name: the asset job's own type is not public Dagster API."""
    landing = LandingLog(settings.landing_dir)

    @sensor(
        name="landing_log_sensor",
        job_name=job_name,
        minimum_interval_seconds=LANDING_SENSOR_INTERVAL_S,
        default_status=DefaultSensorStatus.STOPPED,
        description=f"Stopped by default: pipeline_worker_sensor keeps the long-lived worker "
        "going instead, and the two must not both run. "
        f"Every {LANDING_SENSOR_INTERVAL_S} s: when the collector has published new "
        "landing files, load them into bronze, rebuild the marts and publish them. While a run "
        "is going, the next one waits in the queue (never two at once) and starts the moment "
        "it ends; at most one waits.",
    )
    def landing_log_sensor(context: SensorEvaluationContext):
        latest = landing.latest_name()
        if latest is None:
            return SkipReason(f"no landing files yet in {settings.landing_dir}")
        if context.cursor and latest <= context.cursor:
            return SkipReason(f"no new landing files since {context.cursor}")
        # A run still going may have loaded already: the next one is queued behind it (the
        # pipeline tag's limit keeps them apart) and starts the moment it ends, rather than a
        # tick later. One that has not started loading will take the new files with it.
        waiting = context.instance.get_run_records(
            RunsFilter(job_name=job_name, statuses=WAITING), limit=1
        )
        if waiting:
            return SkipReason(
                f"run {waiting[0].dagster_run.run_id[:8]} has not started loading yet; "
                "it will load the new files"
            )
        return SensorResult(run_requests=[RunRequest(run_key=latest)], cursor=latest)

    return landing_log_sensor


IN_PROGRESS = [*WAITING, DagsterRunStatus.STARTED]

WORKER_SENSOR_INTERVAL_S = 5

RETENTION_SENSOR_INTERVAL_S = 60
"""Retention runs nightly: a minute between it and its rebuild request is soon enough."""

AFTER_TAG = "lakepulse/after"
"""Tag of a run requested because of another: what it follows."""

WORKER_START_GRACE_S = 120
"""A worker run younger than this may not have written its first heartbeat yet (the run's
process imports Dagster, dbt, dlt and great-expectations first)."""


def build_worker_sensor(job: JobDefinition, settings: Settings):
    @sensor(
        name="pipeline_worker_sensor",
        job=job,
        minimum_interval_seconds=WORKER_SENSOR_INTERVAL_S,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Every {WORKER_SENSOR_INTERVAL_S} s: keeps one pipeline_worker run going. "
        "It starts one when none is queued or running (the previous one rolled over, failed or "
        "was killed), and marks failed a run whose worker stopped beating (its process died "
        "without Dagster seeing it), then starts the next.",
    )
    def pipeline_worker_sensor(context: SensorEvaluationContext):
        records = context.instance.get_run_records(
            RunsFilter(job_name=job.name, statuses=IN_PROGRESS), limit=1
        )
        if records:
            record = records[0]
            run = record.dagster_run
            started = record.start_time or record.create_timestamp.timestamp()
            if (
                run.status != DagsterRunStatus.STARTED
                or time.time() - started < WORKER_START_GRACE_S
                or worker_beating(settings)
            ):
                return SkipReason(f"worker run {run.run_id[:8]} is {run.status.value.lower()}")
            context.instance.report_run_failed(
                run, "the pipeline worker stopped beating; a new run takes over"
            )
        return RunRequest(run_key=f"worker-{time.time():.3f}")

    return pipeline_worker_sensor


def build_retention_rebuild_sensor(job_name: str):
    """After a retention materialization that dropped events, one run of ``job_name`` (the
    replay job: every model rebuilt from bronze, then published): through the asset graph, so
    the blocking checks of the marts stand between the rebuild and BI, as in every build. The
    run carries the pipeline tag, so it queues behind other lake writers, and its steps take the
    pipeline lock, so it takes turns with the worker's cycles."""

    @asset_sensor(
        asset_key=RETENTION_KEY,
        job_name=job_name,
        name="retention_rebuild_sensor",
        minimum_interval_seconds=RETENTION_SENSOR_INTERVAL_S,
        default_status=DefaultSensorStatus.RUNNING,
        description="When maintenance/retention dropped bronze events, requests one run of "
        f"{job_name} (full refresh from bronze, then publish; blocking mart checks between).",
    )
    def retention_rebuild_sensor(context: SensorEvaluationContext, asset_event: EventLogEntry):
        materialization = asset_event.asset_materialization
        needed = materialization.metadata.get(REBUILD_NEEDED) if materialization else None
        if not (needed and needed.value):
            return SkipReason("the last retention dropped no events: nothing to rebuild")
        return RunRequest(run_key=f"retention-{asset_event.run_id}", tags={AFTER_TAG: "retention"})

    return retention_rebuild_sensor
