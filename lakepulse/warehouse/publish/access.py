"""Roles and row-level security of the served marts.

``lakepulse_bi`` (no login) may read the aggregate marts of schema ``marts`` and nothing else.
Each tenant's login is a member of it, and a policy on every mart shows it only rows of its
tenant (``lakepulse_admin.current_tenant()``, from the login's name). Customer-level marts
(a row per user or session) are readable only through ``lakepulse_customer_level``, which a
login holds only when created with ``lakepulse tenants bi-login NAME --customer-level``; the
tenant policy applies to it too."""

from __future__ import annotations

import re
import secrets

import psycopg
from psycopg import sql

SCHEMA = "marts"
ADMIN_SCHEMA = "lakepulse_admin"
BI_ROLE = "lakepulse_bi"
CUSTOMER_LEVEL_ROLE = "lakepulse_customer_level"
"""Holds SELECT on the customer-level marts; granted only to logins given customer-level access."""

FINGERPRINTS_TABLE = "published_marts"
"""In the admin schema: per mart, the fingerprint of the content last swapped in."""


def _setup_statements() -> list[sql.Composable]:
    bi, admin, marts = sql.Identifier(BI_ROLE), sql.Identifier(ADMIN_SCHEMA), sql.Identifier(SCHEMA)
    return [
        sql.SQL(
            "do $$ begin if not exists (select from pg_roles where rolname = {}) then "
            "create role {} nologin; end if; end $$"
        ).format(sql.Literal(BI_ROLE), bi),
        sql.SQL(
            "do $$ begin if not exists (select from pg_roles where rolname = {}) then "
            "create role {} nologin; end if; end $$"
        ).format(sql.Literal(CUSTOMER_LEVEL_ROLE), sql.Identifier(CUSTOMER_LEVEL_ROLE)),
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
        sql.SQL(
            "create table if not exists {}.{} (mart text primary key, fingerprint text not null, "
            "published_at timestamptz not null)"
        ).format(admin, sql.Identifier(FINGERPRINTS_TABLE)),
    ]


def ensure_serving(pg_url: str) -> None:
    """Create schema, role and tenant mapping if missing (idempotent)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in _setup_statements():
            conn.execute(statement)


def secure_table(conn: psycopg.Connection, table: str, customer_level: bool) -> None:
    """Tenant row-level security on ``marts.<table>`` and SELECT for the role that may read it
    (the customer-level role for a customer-level mart, else the BI role). In the caller's
    transaction: a table is never visible unsecured."""
    marts, bi = sql.Identifier(SCHEMA), sql.Identifier(BI_ROLE)
    customer_level_role = sql.Identifier(CUSTOMER_LEVEL_ROLE)
    new = sql.Identifier(table)
    conn.execute(sql.SQL("alter table {}.{} enable row level security").format(marts, new))
    conn.execute(
        sql.SQL(
            "create policy tenant_isolation on {}.{} for select to {}, {} "
            "using (tenant_id = lakepulse_admin.current_tenant())"
        ).format(marts, new, bi, customer_level_role)
    )
    reader = customer_level_role if customer_level else bi
    conn.execute(sql.SQL("grant select on {}.{} to {}").format(marts, new, reader))


def tenant_role_name(tenant_id: str) -> str:
    """The PostgreSQL login of a tenant: ``bi_`` and its id, lower case, safe characters."""
    return "bi_" + re.sub(r"[^a-z0-9_]", "_", tenant_id.lower())


def create_tenant_login(
    pg_url: str, tenant_id: str, password: str | None = None, customer_level: bool = False
) -> tuple[str, str]:
    """A login that sees only ``tenant_id``'s rows in every mart; returns (role, password).

    Without ``customer_level`` it reads the aggregate marts only; with it, the customer-level
    marts too. Calling again sets the access as asked (a reset may also take customer-level
    access away)."""
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
            sql.SQL("grant {} to {}" if customer_level else "revoke {} from {}").format(
                sql.Identifier(CUSTOMER_LEVEL_ROLE), sql.Identifier(role)
            )
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
