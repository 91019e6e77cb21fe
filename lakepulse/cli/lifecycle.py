"""Data lifecycle: ``erase`` one user, ``retention`` and ``compact``."""

from __future__ import annotations

import sys

import click

from lakepulse.cli.app import current_settings, main


@main.command(help="Erase one user's events from the landing log, bronze and every mart.")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--user", "user_id", required=True, help="The user_id the SDK sends.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase(tenant_id: str, user_id: str, yes: bool) -> None:
    from ingestion.tenants import TenantError
    from lakepulse.operations.erasure import erase_user

    settings = current_settings()
    if not yes:
        click.confirm(
            f"Erase every event of user {user_id!r} of tenant {tenant_id!r}? This cannot be undone",
            abort=True,
        )
    try:
        report = erase_user(
            settings,
            tenant_id,
            user_id,
            progress=lambda step: click.echo(f"  ... {step}"),
        )
    except TenantError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    click.echo(
        f"erased {report.identities} identities: {report.landing_lines_removed} landing lines "
        f"({report.landing_files_rewritten} files rewritten), {report.bronze_rows_removed} bronze "
        f"rows, {report.rejected_rows_removed} rejected rows; marts rebuilt"
        + (" and republished." if settings.pg_url else ".")
    )
    click.echo(
        f"Audit record (user as keyed hash {report.user_hash[:12]}...) appended to "
        f"{settings.erasure_audit_path}."
    )


@main.command(help="Drop data older than its retention policy (LAKEPULSE_RETENTION_*_DAYS).")
def retention() -> None:
    from lakepulse.core.settings import RetentionPolicy
    from lakepulse.operations.retention import apply_retention, rebuild_after_retention

    settings = current_settings()
    policy = RetentionPolicy.from_env()
    removed = apply_retention(settings, policy)
    for name, result in removed.items():
        details = ", ".join(f"{k}={v}" for k, v in result.items())
        click.echo(f"  {name:<22} keep {getattr(policy, name):>4} days: {details}")
    if rebuild_after_retention(settings, removed):
        click.echo("  marts                  rebuilt from bronze (events were dropped)")
    click.echo("Retention applied. Old file versions go at the next `lakepulse compact`.")


@main.command(help="Compact bronze's small files (OPTIMIZE) and VACUUM old versions.")
@click.option(
    "--retain-hours",
    default=168,
    show_default=True,
    help="Keep file versions younger than this (time travel window).",
)
def compact(retain_hours: int) -> None:
    from datetime import timedelta

    from lakepulse.operations.compaction import compact_and_vacuum

    compacted, vacuumed = compact_and_vacuum(current_settings(), timedelta(hours=retain_hours))
    for table, result in compacted.items():
        click.echo(
            f"  raw.{table:<16} {result['files_removed']} files compacted into "
            f"{result['files_added']}, {vacuumed.get(table, 0)} old files vacuumed"
        )
    if not compacted:
        click.echo(
            "Nothing to compact: bronze does not exist yet. Send events, then `lakepulse ingest`."
        )
