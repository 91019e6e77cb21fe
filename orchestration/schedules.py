"""Schedules: retention nightly, compaction hourly (when no pipeline worker compacts), the
customer-lifetime fits daily (all serialised with the worker's cycles)."""

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from lakepulse.core.heartbeat import worker_beating
from lakepulse.core.settings import Settings
from orchestration.jobs import compaction_job, predict_job, retention_job

retention_schedule = ScheduleDefinition(
    name="nightly_retention",
    job=retention_job,
    cron_schedule="15 3 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="03:15 UTC: drop data older than its retention policy.",
)


def build_compaction_schedule(settings: Settings):
    """Hourly compaction for a data directory no pipeline worker runs on (``lakepulse ingest``
    and ``build`` by hand, or the minute job): a running worker compacts between its own
    cycles, so the schedule skips rather than start a run beside it."""

    @schedule(
        name="hourly_compaction",
        job=compaction_job,
        cron_schedule="30 * * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Every hour at :30: compact the loads' small files and vacuum old ones, "
        "unless a pipeline worker is running (it compacts between its cycles).",
    )
    def hourly_compaction(context: ScheduleEvaluationContext):
        if worker_beating(settings):
            return SkipReason("the pipeline worker compacts bronze between its cycles")
        return RunRequest()

    return hourly_compaction


predictions_schedule = ScheduleDefinition(
    name="daily_predictions",
    job=predict_job,
    cron_schedule="45 2 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="02:45 UTC: fit every tenant's customer lifetime and purchase-propensity models "
    "(`lakepulse predict`).",
)
