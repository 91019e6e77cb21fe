"""Reading the marts: ``sql`` (read-only DuckDB) and ``experiment`` (results and history)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lakepulse.cli.app import current_settings, main


@main.command(
    help='Read-only SQL over bronze (raw.events) and marts, e.g. lakepulse sql "select 1".'
)
@click.argument("query")
@click.option("--max-rows", default=100, show_default=True)
def sql(query: str, max_rows: int) -> None:
    import duckdb

    from lakepulse.warehouse.replica import explorer

    conn, notes = explorer(current_settings())
    for note in notes:
        click.echo(f"note: {note}", err=True)
    try:
        result = conn.sql(query)
    except duckdb.Error as err:
        click.echo(f"query failed: {err}", err=True)
        sys.exit(2)
    if result is None:
        return
    click.echo(result.limit(max_rows).df().to_string(index=False))


@main.command(
    help="Where an A/B experiment stands for a tenant, and optionally a PNG of its history."
)
@click.argument("experiment_id")
@click.option("--tenant", "tenant_id", required=True, help="Tenant whose results to show.")
@click.option("--metric", default="conversion", show_default=True, help="Metric to plot.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the lift and its always-valid confidence sequence over time here.",
)
def experiment(experiment_id: str, tenant_id: str, metric: str, plot_path: str | None) -> None:
    import duckdb

    from lakepulse.operations.report import current_results, history, plot_history

    settings = current_settings()
    try:
        frame = current_results(settings, experiment_id, tenant_id)
    except duckdb.CatalogException:
        click.echo(
            "no experiment results yet: run `lakepulse build` (or wait for the sensor).", err=True
        )
        sys.exit(2)
    if frame.empty:
        click.echo(
            f"no results for experiment {experiment_id!r} and tenant {tenant_id!r}: is it in "
            "dbt_project/seeds/experiments.csv, and have its users been exposed yet?",
            err=True,
        )
        sys.exit(2)
    click.echo(frame.to_string(index=False))
    if plot_path:
        snapshots = history(settings, experiment_id, tenant_id, metric)
        if snapshots.empty:
            click.echo(f"no snapshots with a lift for metric {metric!r} yet.", err=True)
            sys.exit(2)
        title = f"{experiment_id} / {tenant_id} / {metric}"
        click.echo(f"wrote {plot_history(snapshots, title, Path(plot_path))}")
