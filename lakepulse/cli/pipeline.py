"""The pipeline by hand: ``ingest``, ``worker``, ``build``, ``publish`` and ``replay``."""

from __future__ import annotations

import sys

import click

from lakepulse.cli.app import current_settings, main, require_bronze, say_waiting_for_worker


@main.command(help="Load new landing files into Delta bronze once (no Dagster needed).")
def ingest() -> None:
    from deltalake import DeltaTable

    from ingestion.pipeline import run_ingest

    settings = current_settings()
    with click.progressbar(length=1, label="loading landing log into raw.events") as bar:
        info = run_ingest(settings)
        bar.update(1)
    rows = (
        DeltaTable(str(settings.bronze_events_path)).count()
        if settings.bronze_events_path.exists()
        else 0
    )
    click.echo(
        f"load {info.loads_ids[-1] if info.loads_ids else '-'} done; raw.events holds {rows} events."
    )
    click.echo("Next: `lakepulse build` to rebuild the marts.")


@main.command(
    help="Run the pipeline worker in the foreground: load, check, build, publish and fire "
    "each freshness tier (live, session, daily) on its cadence, until Ctrl-C. Dagster runs "
    "the same worker (job pipeline_worker); run this one only where Dagster does not."
)
@click.option("--minutes", type=float, default=None, help="Stop after this many minutes.")
def worker(minutes: float | None) -> None:
    import signal
    import threading
    import time

    from lakepulse.operations.worker import CycleReport, run_worker

    settings = current_settings()
    stop = threading.Event()
    for stopping in (signal.SIGINT, signal.SIGTERM):  # the cycle in progress ends first
        signal.signal(stopping, lambda *_: stop.set())

    def show(report: CycleReport) -> None:
        if report.error:
            took = sum(report.stages.values())
            click.echo(f"cycle failed after {took:.1f} s: {report.error}", err=True)
        else:
            click.echo(report.summary())

    click.echo(f"pipeline worker on {settings.home}; Ctrl-C stops it after the current cycle.")
    until = time.monotonic() + minutes * 60 if minutes else None
    run_worker(settings, stop, until, on_cycle=show)
    click.echo("worker stopped. `lakepulse sql` reads the marts as its last daily cycle left them.")


@main.command(
    help="dbt build: staging, intermediate and marts, with their tests. Any dbt build option "
    "passes through, e.g. lakepulse build --full-refresh --select mart_buyer_signals.",
    # dbt's options are dbt's: click passes them on rather than refusing them as unknown
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
def build(dbt_args: tuple[str, ...]) -> None:
    import subprocess

    from lakepulse.operations.rebuild import prepare_dbt, run_build
    from lakepulse.warehouse.schema_drift import migration_message

    settings = current_settings()
    require_bronze(settings)
    refused = prepare_dbt(settings).error  # dbt reads only validated trigger definitions
    if refused:
        click.echo(f"warning: {refused}; the previous valid triggers are built instead.", err=True)
    try:
        run_build(
            settings,
            *dbt_args,
            on_migrate=lambda drifts: click.echo(migration_message(drifts), err=True),
            on_wait=say_waiting_for_worker,
        )
    except subprocess.CalledProcessError as err:
        click.echo(
            "dbt build failed; the lines above name the model or test. Fix it and rerun.", err=True
        )
        sys.exit(err.returncode)
    click.echo(
        'Marts rebuilt. Query them: lakepulse sql "select * from marts.mart_event_volume limit 10"'
    )


@main.command(help="Publish the marts to PostgreSQL schema `marts` (LAKEPULSE_PG_URL).")
@click.option("--all", "everything", is_flag=True, help="Copy every mart whole, changed or not.")
def publish(everything: bool) -> None:
    from lakepulse.warehouse.publish import publish as publish_marts

    settings = current_settings()
    if not settings.pg_url:
        click.echo(
            "error: set LAKEPULSE_PG_URL to the serving PostgreSQL (postgresql://...)", err=True
        )
        sys.exit(2)

    if not settings.replica_path.exists():
        click.echo("error: no marts yet: run `lakepulse build` first", err=True)
        sys.exit(2)
    result = publish_marts(
        settings,
        settings.pg_url,
        force=everything,
        on_wait=lambda: click.echo("another publish is running (the pipeline's); waiting for it"),
    )
    for mart, rows in result.rows.items():
        how = f"delta of {result.deltas[mart]} keys" if mart in result.deltas else "copied"
        click.echo(f"  marts.{mart:<26} {rows:>10} rows  ({how})")
    click.echo(
        f"published {len(result.rows)} marts in {result.seconds:.1f} s, each atomically"
        + (f"; {len(result.unchanged)} unchanged, left as they are." if result.unchanged else ".")
    )
    click.echo(
        "Next: `lakepulse tenants bi-login NAME` for a BI login that sees one tenant's rows."
    )


@main.command(help="Rebuild every mart from bronze (dbt full refresh), then republish.")
def replay() -> None:
    import subprocess

    from lakepulse.operations.replay import replay as replay_marts

    settings = current_settings()
    require_bronze(settings)
    try:
        replay_marts(settings)
    except subprocess.CalledProcessError as err:
        click.echo("replay failed; the dbt output above names the model.", err=True)
        sys.exit(err.returncode)
    click.echo("Every mart rebuilt from bronze" + (" and republished." if settings.pg_url else "."))
