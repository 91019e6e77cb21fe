"""The ``lakepulse`` command group and what its command modules share."""

from __future__ import annotations

import sys

import click

from lakepulse.core.settings import Settings


def current_settings() -> Settings:
    """This process's settings (``LAKEPULSE_HOME`` and friends), read when a command runs."""
    return Settings.from_env()


@click.group(help="Real-time commerce analytics on a lakehouse. Data lives in $LAKEPULSE_HOME.")
def main() -> None:
    pass


def say_waiting_for_worker() -> None:
    """Shown when a command waits for the pipeline lock the worker holds during a cycle."""
    click.echo("waiting for the pipeline worker's cycle to end (a few seconds) ...", err=True)


def require_bronze(settings: Settings) -> None:
    """dbt reads bronze's Delta tables; before the first load there are none."""
    if not (settings.bronze_events_path / "_delta_log").exists():
        click.echo(
            f"error: bronze does not exist yet ({settings.bronze_events_path}): run "
            "`lakepulse ingest` first (it creates the tables, empty if no events were sent).",
            err=True,
        )
        sys.exit(2)
