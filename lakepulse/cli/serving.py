"""BI access: ``bi`` (Superset) and the ``tenants`` group (write keys, BI logins)."""

from __future__ import annotations

import sys

import click

from lakepulse.cli.app import current_settings, main


@main.command(
    help="Start Apache Superset (LAKEPULSE_BI_PORT, default 8089) with the Business, Marketing "
    "and Operations dashboards for every tenant, over the serving PostgreSQL; Ctrl-C stops it."
)
def bi() -> None:
    from lakepulse.operations.bi import run_bi

    settings = current_settings()
    if not settings.pg_url:
        click.echo(
            "error: set LAKEPULSE_PG_URL to the serving PostgreSQL (postgresql://...), or run "
            "`make demo`, which starts PostgreSQL and Superset together.",
            err=True,
        )
        sys.exit(2)
    sys.exit(run_bi(settings, click.echo))


@main.group(help="Tenants (merchants) and their write keys.")
def tenants() -> None:
    pass


@tenants.command("add", help="Register a tenant and print a new write key for its SDKs.")
@click.argument("name")
def tenants_add(name: str) -> None:
    from ingestion.tenants import TenantError, TenantRegistry

    settings = current_settings()
    try:
        key = TenantRegistry(settings.tenants_file).add(name)
    except TenantError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    click.echo(key)
    click.echo(
        f"Tenant {name!r} can now send events: point a Segment SDK at {settings.collector_url} "
        "with this write key (shown once; it is stored hashed).",
        err=True,
    )


@tenants.command(
    "bi-login", help="Create (or reset) a PostgreSQL login that reads only NAME's rows."
)
@click.argument("name")
@click.option(
    "--customer-level",
    is_flag=True,
    help="Also read the marts with a row per user or session (fct_sessions, dim_users, ...).",
)
def tenants_bi_login(name: str, customer_level: bool) -> None:
    from urllib.parse import urlsplit

    from lakepulse.warehouse.publish import create_tenant_login

    settings = current_settings()
    if not settings.pg_url:
        click.echo(
            "error: set LAKEPULSE_PG_URL to the serving PostgreSQL (postgresql://...)", err=True
        )
        sys.exit(2)
    role, password = create_tenant_login(settings.pg_url, name, customer_level=customer_level)
    url = urlsplit(settings.pg_url)
    click.echo(f"user:     {role}")
    click.echo(f"password: {password}")
    click.echo(
        f"host:     {url.hostname or 'localhost'}  port: {url.port or 5432}  database: {url.path.lstrip('/') or 'postgres'}  schema: marts"
    )
    scope = (
        "every mart, customer-level ones included"
        if customer_level
        else "the aggregate marts (add --customer-level for per-user and per-session marts)"
    )
    click.echo(
        f"Read-only: {scope}; row-level security shows this login only its tenant's rows.",
        err=True,
    )


@tenants.command("list", help="List registered tenants.")
def tenants_list() -> None:
    from ingestion.tenants import TenantRegistry

    names = TenantRegistry(current_settings().tenants_file).tenants()
    for name in names:
        click.echo(name)
    if not names:
        click.echo("No tenants yet: `lakepulse tenants add NAME` registers one.", err=True)
