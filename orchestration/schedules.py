"""Schedules: retention nightly, compaction hourly, the customer-lifetime fits daily (all
serialised with the minute runs)."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from orchestration.jobs import compaction_job, predict_job, retention_job

retention_schedule = ScheduleDefinition(
    name="nightly_retention",
    job=retention_job,
    cron_schedule="15 3 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="03:15 UTC: drop data older than its retention policy.",
)

compaction_schedule = ScheduleDefinition(
    name="hourly_compaction",
    job=compaction_job,
    cron_schedule="30 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every hour at :30: compact the minute loads' small files, vacuum old ones.",
)

predictions_schedule = ScheduleDefinition(
    name="daily_predictions",
    job=predict_job,
    cron_schedule="45 2 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="02:45 UTC: fit every tenant's customer lifetime and purchase-propensity models "
    "(`lakepulse predict`).",
)
