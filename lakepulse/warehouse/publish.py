"""Publishing marts to PostgreSQL for BI: atomic swaps, a read-only role, row-level security.

BI tools never touch the DuckDB warehouse (one writer or many readers, never both). Each
publish copies a mart into a fresh table next to the live one (DuckDB's postgres extension,
binary COPY), gives it its indexes, grants and tenant policy, then swaps it in by renames in
one transaction: a reader sees the old table or the new one, never a partial or missing one.

Access: ``lakepulse_bi`` (no login) may read schema ``marts`` and nothing else. Each tenant's
login is a member of it, and a policy on every mart shows it only rows of its tenant.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from lakepulse.core.duck import connect, load_postgres
from lakepulse.core.settings import Settings

SCHEMA = "marts"
ADMIN_SCHEMA = "lakepulse_admin"
BI_ROLE = "lakepulse_bi"

MARTS: dict[str, tuple[str, ...]] = {
    "fct_sessions": ("tenant_id", "session_date"),
    "dim_users": ("tenant_id", "first_seen_date"),
    "mart_funnel_conversion": ("tenant_id", "funnel_id", "entry_date"),
    "mart_conversion_windows": ("tenant_id", "window_minutes", "window_end_at"),
    "mart_revenue_velocity": ("tenant_id", "campaign", "minute_at"),
    "mart_cohort_retention": ("tenant_id", "cohort_grain", "cohort_start"),
    "mart_campaign_kpis": ("tenant_id", "campaign"),
    "mart_event_volume": ("tenant_id", "event_minute"),
    "mart_experiment_results": ("tenant_id", "experiment_id"),
    "fct_experiment_snapshots": ("tenant_id", "experiment_id", "snapshot_at"),
    "mart_anomaly_alerts": ("tenant_id", "minute_at"),
    "mart_buyer_signals": ("tenant_id", "user_key"),
    "fct_trigger_firings": ("tenant_id", "fired_date"),
    "fct_trigger_deliveries": ("tenant_id", "trigger", "fired_at"),
    "mart_trigger_impact": ("tenant_id", "trigger"),
}
"""Published marts and the index each gets for dashboard filters (tenant, then date)."""


def _setup_statements() -> list[sql.Composable]:
    bi, admin, marts = sql.Identifier(BI_ROLE), sql.Identifier(ADMIN_SCHEMA), sql.Identifier(SCHEMA)
    return [
        sql.SQL(
            "do $$ begin if not exists (select from pg_roles where rolname = {}) then "
            "create role {} nologin; end if; end $$"
        ).format(sql.Literal(BI_ROLE), bi),
        sql.SQL("create schema if not exists {}").format(marts),
        sql.SQL("create schema if not exists {}").format(admin),
        sql.SQL("revoke all on schema {} from public").format(admin),
        sql.SQL("revoke create on schema public from public"),
        sql.SQL(
            "create table if not exists {}.tenant_logins "
            "(role_name text primary key, tenant_id text not null)"
        ).format(admin),
        # Which tenant the connected login belongs to. SECURITY DEFINER so BI logins need no
        # access to the mapping table itself; session_user is the login, not the definer.
        sql.SQL(
            "create or replace function {}.current_tenant() returns text "
            "language sql stable security definer set search_path = pg_catalog as "
            "$$ select tenant_id from lakepulse_admin.tenant_logins where role_name = session_user $$"
        ).format(admin),
        sql.SQL("revoke all on function {}.current_tenant() from public").format(admin),
        sql.SQL("grant usage on schema {} to {}").format(admin, bi),
        sql.SQL("grant execute on function {}.current_tenant() to {}").format(admin, bi),
        sql.SQL("grant usage on schema {} to {}").format(marts, bi),
    ]


def ensure_serving(pg_url: str) -> None:
    """Create schema, role and tenant mapping if missing (idempotent)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in _setup_statements():
            conn.execute(statement)


@dataclass
class PublishResult:
    rows: dict[str, int]
    seconds: float
    skipped: list[str]


def _swap(
    conn: psycopg.Connection, mart: str, staging: str, index_columns: tuple[str, ...]
) -> None:
    marts, bi = sql.Identifier(SCHEMA), sql.Identifier(BI_ROLE)
    new, live, old = sql.Identifier(staging), sql.Identifier(mart), sql.Identifier(f"{mart}__old")
    index = sql.Identifier(f"{mart}__filter_idx")
    with conn.transaction():
        conn.execute(
            sql.SQL("create index {} on {}.{} ({})").format(
                sql.Identifier(f"{staging}__idx"),
                marts,
                new,
                sql.SQL(", ").join(map(sql.Identifier, index_columns)),
            )
        )
        conn.execute(sql.SQL("alter table {}.{} enable row level security").format(marts, new))
        conn.execute(
            sql.SQL(
                "create policy tenant_isolation on {}.{} for select to {} "
                "using (tenant_id = lakepulse_admin.current_tenant())"
            ).format(marts, new, bi)
        )
        conn.execute(sql.SQL("grant select on {}.{} to {}").format(marts, new, bi))
        conn.execute(sql.SQL("drop table if exists {}.{}").format(marts, old))
        conn.execute(sql.SQL("alter table if exists {}.{} rename to {}").format(marts, live, old))
        conn.execute(sql.SQL("alter table {}.{} rename to {}").format(marts, new, live))
        conn.execute(sql.SQL("drop table if exists {}.{}").format(marts, old))
        conn.execute(
            sql.SQL("alter index {}.{} rename to {}").format(
                marts, sql.Identifier(f"{staging}__idx"), index
            )
        )


def publish(
    settings: Settings, pg_url: str, marts: dict[str, tuple[str, ...]] | None = None
) -> PublishResult:
    """Copy every mart from the warehouse to PostgreSQL schema ``marts``, each swapped in
    atomically."""
    started = time.perf_counter()
    marts = marts or MARTS
    ensure_serving(pg_url)
    duck = connect()
    load_postgres(duck)
    # The read replica: a consistent copy of the last build that no build ever locks.
    duck.execute(f"attach '{settings.replica_path}' as wh (read_only)")
    duck.execute(f"attach '{pg_url}' as pg (type postgres)")
    available = {
        row[0]
        for row in duck.execute(
            "select table_name from information_schema.tables where table_catalog = 'wh' and table_schema = ?",
            [SCHEMA],
        ).fetchall()
    }
    rows, skipped = {}, []
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for mart, index_columns in marts.items():
                if mart not in available:
                    skipped.append(mart)
                    continue
                staging = f"{mart}__publishing"
                conn.execute(
                    sql.SQL("drop table if exists {}.{}").format(
                        sql.Identifier(SCHEMA), sql.Identifier(staging)
                    )
                )
                duck.execute(
                    f'create table pg.{SCHEMA}."{staging}" as select * from wh.{SCHEMA}."{mart}"'
                )
                _swap(conn, mart, staging, index_columns)
                rows[mart] = duck.execute(f'select count(*) from wh.{SCHEMA}."{mart}"').fetchone()[
                    0
                ]
    finally:
        duck.close()
    return PublishResult(rows, time.perf_counter() - started, skipped)


def tenant_role_name(tenant_id: str) -> str:
    return "bi_" + re.sub(r"[^a-z0-9_]", "_", tenant_id.lower())


def create_tenant_login(
    pg_url: str, tenant_id: str, password: str | None = None
) -> tuple[str, str]:
    """A login that sees only ``tenant_id``'s rows in every mart; returns (role, password)."""
    ensure_serving(pg_url)
    role = tenant_role_name(tenant_id)
    password = password or secrets.token_urlsafe(18)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone()
        verb = "alter" if exists else "create"
        conn.execute(
            sql.SQL(
                verb + " role {} login password {} nosuperuser nocreatedb nocreaterole noinherit"
            ).format(sql.Identifier(role), sql.Literal(password))
        )
        conn.execute(sql.SQL("alter role {} inherit").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("grant {} to {}").format(sql.Identifier(BI_ROLE), sql.Identifier(role))
        )
        conn.execute(
            "insert into lakepulse_admin.tenant_logins values (%s, %s) "
            "on conflict (role_name) do update set tenant_id = excluded.tenant_id",
            [role, tenant_id],
        )
        # Read-only at the session level too, and no access to the public schema.
        conn.execute(
            sql.SQL("alter role {} set default_transaction_read_only = on").format(
                sql.Identifier(role)
            )
        )
    return role, password
