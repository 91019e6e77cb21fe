"""Operations an operator starts by hand from the Dagster UI (Launchpad), with the same code
as the CLI.

Note for privacy reviews: Dagster stores a run's config, so the erasure job leaves the user id
in Dagster's run storage (`$DAGSTER_HOME`). `lakepulse erase` leaves no trace at all; prefer it,
or delete the run afterwards (`dagster run delete RUN_ID`).

The workflows are imported in the ops' bodies: the code server loads these definitions and must
not import DuckDB, pyarrow and pandas with them."""

import threading
import time

from dagster import Config, DagsterRunStatus, OpExecutionContext, op

from orchestration.events import cycle_events
from orchestration.resources import LakepulseResource

WORKER_ROLLOVER_MINUTES = 30.0


class ErasureConfig(Config):
    """The request: which tenant's user to erase (the user_id the SDK sends)."""

    tenant_id: str
    user_id: str


@op(
    description="Erase one user's events from the landing log, bronze (with old file "
    "versions) and every mart, then write an audit record: `lakepulse erase`, as a job.",
)
def erase_user_op(
    context: OpExecutionContext, config: ErasureConfig, lakepulse: LakepulseResource
) -> None:
    from lakepulse.operations.erasure import erase_user

    settings = lakepulse.settings
    report = erase_user(
        settings,
        config.tenant_id,
        config.user_id,
        progress=context.log.info,
    )
    context.log.info(
        f"erased {report.identities} identities: {report.landing_lines_removed} landing lines, "
        f"{report.bronze_rows_removed} bronze rows, {report.rejected_rows_removed} rejected rows"
    )


class WorkerConfig(Config):
    """``minutes``: how long this run of the worker cycles before it ends and the sensor starts
    the next (a run's event log stays readable)."""

    minutes: float = WORKER_ROLLOVER_MINUTES


@op(
    description="The pipeline worker (lakepulse.operations.worker.run_worker, the same as "
    "`lakepulse worker`): load, check, build, publish and fire each freshness tier on its "
    "cadence, reporting every cycle's materializations and bronze check here.",
)
def pipeline_worker_op(
    context: OpExecutionContext, config: WorkerConfig, lakepulse: LakepulseResource
) -> None:
    from lakepulse.operations.worker import CycleReport, run_worker

    settings = lakepulse.settings
    freshness_reported: dict[str, float] = {}
    stop = threading.Event()

    def report(cycle: CycleReport) -> None:
        for event in cycle_events(cycle, settings, freshness_reported):
            context.log_event(event)
        if cycle.error:
            context.log.warning(f"cycle failed: {cycle.error}")
        else:
            context.log.info(cycle.summary())
        # A run failed from outside (the worker sensor, when it found no heartbeat) is not
        # stopped by Dagster: its worker would go on beside the next run's, trading the lock.
        run = context.instance.get_run_by_id(context.run_id)
        if run is not None and run.status != DagsterRunStatus.STARTED and not stop.is_set():
            context.log.warning(
                f"this run is {run.status.value.lower()}: the worker stops after this cycle"
            )
            stop.set()

    run_worker(settings, stop=stop, until=time.monotonic() + config.minutes * 60, on_cycle=report)
