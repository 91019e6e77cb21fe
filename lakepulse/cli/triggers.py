"""The ``triggers`` group: validate, list, fire, deliver, retry."""

from __future__ import annotations

import sys

import click

from lakepulse.cli.app import current_settings, main


@main.group(help="Triggers (dbt_project/triggers.yml): validate, list, fire, deliver, retry.")
def triggers() -> None:
    pass


@triggers.command("validate", help="Check triggers.yml; install it as the running definitions.")
def triggers_validate() -> None:
    from lakepulse.triggers.definitions import install, triggers_file

    installed = install(current_settings())
    if installed.error:
        click.echo(f"error: {installed.error}", err=True)
        running = len(installed.definitions.triggers)
        click.echo(
            f"Refused: the previous valid definitions ({running} trigger(s)) keep running. "
            f"Fix {triggers_file()} and run `lakepulse triggers validate` again.",
            err=True,
        )
        sys.exit(1)
    click.echo(f"{triggers_file()} is valid: {len(installed.definitions.triggers)} trigger(s).")
    click.echo("They fire on the next `lakepulse triggers fire` (or Dagster run).", err=True)


@triggers.command("list", help="Each running trigger with its firings in the last hour and day.")
def triggers_list() -> None:
    from lakepulse.triggers.definitions import install
    from lakepulse.triggers.firing import firing_counts

    settings = current_settings()
    installed = install(settings)
    if installed.error:
        click.echo(
            f"warning: triggers.yml refused, showing the running copy: {installed.error}", err=True
        )
    counts = firing_counts(settings)
    click.echo(f"{'trigger':<28} {'kind':<18} {'last hour':>9} {'last day':>9} {'total':>7}")
    for t in installed.definitions.triggers:
        c = counts.get(t.name, {"last_hour": 0, "last_day": 0, "total": 0})
        click.echo(
            f"{t.name:<28} {t.kind:<18} {c['last_hour']:>9} {c['last_day']:>9} {c['total']:>7}"
        )
    if not installed.definitions.triggers:
        click.echo("No triggers defined: add some to dbt_project/triggers.yml.", err=True)


@triggers.command("fire", help="Record new firings exactly once and write them back as events.")
@click.option("--dry-run", is_flag=True, help="Show what would fire; record nothing.")
def triggers_fire(dry_run: bool) -> None:
    from lakepulse.triggers.firing import fire

    result = fire(current_settings(), dry_run=dry_run)
    if result.refused:
        click.echo(
            f"warning: triggers.yml refused, the previous definitions ran: {result.refused}",
            err=True,
        )
    for name, outcome in result.outcomes.items():
        line = (
            f"{name}: {len(outcome.fired)} new, {outcome.already_recorded} already recorded, "
            f"{outcome.cooling_down} in cooldown"
        )
        if outcome.outside_propensity:
            line += f", {outcome.outside_propensity} outside the propensity range"
        click.echo(line + (f" ({outcome.note})" if outcome.note else ""))
        if dry_run:
            for row in outcome.fired:
                click.echo(
                    f"  would fire {row['firing_id']} {row['tenant_id']} "
                    f"{row['user_id'] or '-'} {row['arm']}"
                )
    click.echo(result.summary() + ".")
    click.echo(
        "Nothing was recorded (dry run)."
        if dry_run
        else "Firings are in fct_trigger_firings after the next build; their `Trigger Fired` "
        "events reach bronze with the next `lakepulse ingest`.",
        err=True,
    )


@triggers.command(
    "deliver",
    help="One delivery pass: send every due treatment firing to its destinations (webhook, "
    "e-mail, Slack), retrying on the schedule and dead-lettering what cannot be delivered.",
)
def triggers_deliver() -> None:
    from lakepulse.triggers.delivery import DestinationError, deliver_pass

    settings = current_settings()
    try:
        result = deliver_pass(settings)
    except DestinationError as err:
        click.echo(f"error: {err}", err=True)
        click.echo("Fix the destinations in the triggers file, then rerun.", err=True)
        sys.exit(2)
    click.echo(result.summary())
    if result.dead:
        click.echo(
            "Dead letters are in marts.fct_trigger_deliveries; re-queue them with "
            "`lakepulse triggers retry [--trigger T]` once the receiver is fixed."
        )
    elif result.deferred or result.retrying:
        click.echo("The rest goes at the next pass (the Dagster sensor runs one every 30 s).")


@triggers.command("retry", help="Re-queue dead letters, from the start of the retry schedule.")
@click.option("--trigger", "trigger", default=None, help="Only this trigger's dead letters.")
@click.option("--destination", default=None, help="Only this destination's dead letters.")
def triggers_retry(trigger: str | None, destination: str | None) -> None:
    from lakepulse.triggers.delivery import requeue_dead

    count = requeue_dead(current_settings(), trigger=trigger, destination=destination)
    if count is None:
        click.echo("a delivery pass is running; rerun when it ends.", err=True)
        sys.exit(1)
    click.echo(f"re-queued {count} dead letters. Next: `lakepulse triggers deliver` sends them.")
