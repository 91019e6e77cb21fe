"""Sensors: the minute cadence of the pipeline. (Anomaly alerts are a trigger kind now:
models/triggers/trigger_anomaly.sql, fired with the other triggers after the marts.)"""

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
from lakepulse.core.settings import Settings
from lakepulse.triggers.delivery import deliver_pass

WAITING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING]
"""Runs that have not begun loading: new landing files will be in their load anyway."""


LANDING_SENSOR_INTERVAL_S = 5
"""How often the landing sensor looks (the sensor daemon's own loop is 5 s). A minute cadence
at most: under steady traffic a run starts as soon as the previous one ends, so an event
waits for at most the run in progress, not for a clock tick as well."""


def build_landing_sensor(job: UnresolvedAssetJobDefinition, settings: Settings):
    landing = LandingLog(settings.landing_dir)

    @sensor(
        name="landing_log_sensor",
        job=job,
        minimum_interval_seconds=LANDING_SENSOR_INTERVAL_S,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Every {LANDING_SENSOR_INTERVAL_S} s: when the collector has published new "
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
            RunsFilter(job_name=job.name, statuses=WAITING), limit=1
        )
        if waiting:
            return SkipReason(
                f"run {waiting[0].dagster_run.run_id[:8]} has not started loading yet; "
                "it will load the new files"
            )
        return SensorResult(run_requests=[RunRequest(run_key=latest)], cursor=latest)

    return landing_log_sensor


def build_delivery_sensor(settings: Settings):
    @sensor(
        name="trigger_delivery_sensor",
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Every 30 s: one delivery pass (lakepulse.triggers.delivery.deliver_pass, "
        "the same as `lakepulse triggers deliver`): due treatment firings go to their webhook, "
        "e-mail and Slack destinations, with retries and dead letters. A pass stops starting "
        "new deliveries after 25 s, so passes never overlap.",
    )
    def trigger_delivery_sensor(context: SensorEvaluationContext):
        result = deliver_pass(settings)
        if result.busy or not result.due:
            return SkipReason(result.summary())
        context.log.info(result.summary())
        if result.dead:
            context.log.warning(
                f"{result.dead} dead letters: see marts.fct_trigger_deliveries, then "
                "`lakepulse triggers retry`"
            )
        return SkipReason(result.summary())

    return trigger_delivery_sensor
