"""Publishing marts to PostgreSQL for BI: atomic swaps, a read-only role, row-level security.

BI tools never touch the DuckDB warehouse (one writer or many readers, never both). Each
publish copies a mart into a fresh table next to the live one (DuckDB's postgres extension,
binary COPY), gives it its indexes, grants and tenant policy, then swaps it in by renames in
one transaction: a reader sees the old table or the new one, never a partial or missing one.

Access: ``lakepulse_bi`` (no login) may read the aggregate marts of schema ``marts`` and nothing
else. Each tenant's login is a member of it, and a policy on every mart shows it only rows of
its tenant. Marts with a row per user or session (:data:`CUSTOMER_LEVEL_MARTS`) are readable
only through ``lakepulse_customer_level``, which a login holds only when created with
``lakepulse tenants bi-login NAME --customer-level``; the tenant policy applies to it too.
After each publish, ``marts.mart_publish_freshness`` records when each mart was swapped in and
the latest load time it holds, per tenant: the Operations dashboard's freshness chart.

Only marts whose content changed since the last publish are copied: each mart's fingerprint (its
row count and the sum of its rows' hashes, computed by DuckDB on the replica) is kept in
``lakepulse_admin.published_marts``; a mart with the same fingerprint as its live table is left
as it is (it already holds these rows) and counted current. Every minute most marts of a quiet
tenant, and the experiment and trigger marts between their changes, need no copy.

The large marts of :data:`DELTA_KEYS` (a row per session or user, which every minute changes a
few of) are published as a delta when PostgreSQL holds what the last publish left there: the
keys of the rows added, changed or gone since then (found by comparing row hashes with the
published state kept beside the warehouse) are deleted and the new rows inserted, in one
transaction, so a reader sees the table before or after, never between. Anything else (no state,
a state that does not match the live table, ``force``) copies the whole table and swaps it in.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from lakepulse.core.duck import connect, load_postgres
from lakepulse.core.locks import exclusive_lock
from lakepulse.core.settings import Settings

SCHEMA = "marts"
ADMIN_SCHEMA = "lakepulse_admin"
BI_ROLE = "lakepulse_bi"
CUSTOMER_LEVEL_ROLE = "lakepulse_customer_level"
"""Holds SELECT on the customer-level marts; granted only to logins given customer-level access."""

CUSTOMER_LEVEL_MARTS: set[str] = {
    "fct_sessions",
    "dim_users",
    "mart_buyer_signals",
    "fct_trigger_firings",
    "fct_trigger_deliveries",
    "mart_customer_predictions",
    "mart_visitor_propensity",
}
"""Marts with a row per user or session: a plain BI login reads only aggregates. A module that
publishes another user-level table adds its name here."""

FRESHNESS_TABLE = "mart_publish_freshness"
"""Per tenant and mart: when the last publish swapped it in, its rows and latest load time."""

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
    "mart_rejected_events": ("tenant_id", "rejected_minute"),
    "fct_trigger_deliveries": ("tenant_id", "trigger", "fired_at"),
    "mart_trigger_impact": ("tenant_id", "trigger"),
    "mart_clv_model": ("tenant_id", "fitted_at"),
    "mart_customer_predictions": ("tenant_id", "churn_risk"),
    "mart_model_accuracy": ("tenant_id", "fitted_at"),
    "mart_visitor_propensity": ("tenant_id", "session_start_at"),
    "mart_campaign_forecast": ("tenant_id", "launched_at"),
    "mart_customer_segments": ("tenant_id", "observation_end"),
}
"""Published marts and the index each gets for dashboard filters (tenant, then date)."""


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


DELTA_KEYS: dict[str, tuple[str, ...]] = {
    "fct_sessions": ("tenant_id", "session_id"),
    "dim_users": ("tenant_id", "user_key"),
    "mart_buyer_signals": ("tenant_id", "user_key"),
    "mart_customer_predictions": ("tenant_id", "user_key"),
    "mart_event_volume": ("tenant_id", "event_minute", "event_type", "event_name"),
    "mart_conversion_windows": ("tenant_id", "window_minutes", "window_end_at"),
}
"""Marts published as a delta, by their unique key (each has a uniqueness test on it). A delta
is the keys whose rows changed: mart_buyer_signals keeps no clock in its rows, so a minute
changes only the users whose events, or 7/30-day and days-since figures, moved; the live
tier's marts (a row per minute) change in their last minutes only, so the worker's cycle
every few seconds sends a few rows, not the history."""

FINGERPRINTS_TABLE = "published_marts"
"""In the admin schema: per mart, the fingerprint of the content last swapped in."""


@dataclass
class PublishResult:
    rows: dict[str, int]
    """Marts copied and swapped in, and their rows."""
    seconds: float
    skipped: list[str]
    """Marts the replica does not hold (not built yet)."""
    unchanged: list[str] = field(default_factory=list)
    """Marts whose content is the live table's already: not copied."""
    deltas: dict[str, int] = field(default_factory=dict)
    """Marts of ``rows`` published as a delta, and the keys each delta touched."""


def _swap(
    conn: psycopg.Connection,
    mart: str,
    staging: str,
    index_columns: tuple[str, ...],
    fingerprint: str | None = None,
) -> None:
    marts, bi = sql.Identifier(SCHEMA), sql.Identifier(BI_ROLE)
    customer_level = sql.Identifier(CUSTOMER_LEVEL_ROLE)
    reader = customer_level if mart in CUSTOMER_LEVEL_MARTS else bi
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
        if mart in DELTA_KEYS:  # the deltas delete by key
            conn.execute(
                sql.SQL("create index {} on {}.{} ({})").format(
                    sql.Identifier(f"{staging}__key"),
                    marts,
                    new,
                    sql.SQL(", ").join(map(sql.Identifier, DELTA_KEYS[mart])),
                )
            )
        conn.execute(sql.SQL("alter table {}.{} enable row level security").format(marts, new))
        conn.execute(
            sql.SQL(
                "create policy tenant_isolation on {}.{} for select to {}, {} "
                "using (tenant_id = lakepulse_admin.current_tenant())"
            ).format(marts, new, bi, customer_level)
        )
        conn.execute(sql.SQL("grant select on {}.{} to {}").format(marts, new, reader))
        conn.execute(sql.SQL("drop table if exists {}.{}").format(marts, old))
        conn.execute(sql.SQL("alter table if exists {}.{} rename to {}").format(marts, live, old))
        conn.execute(sql.SQL("alter table {}.{} rename to {}").format(marts, new, live))
        _fault_pause("swap", mart)
        conn.execute(sql.SQL("drop table if exists {}.{}").format(marts, old))
        conn.execute(
            sql.SQL("alter index {}.{} rename to {}").format(
                marts, sql.Identifier(f"{staging}__idx"), index
            )
        )
        if mart in DELTA_KEYS:
            conn.execute(
                sql.SQL("alter index {}.{} rename to {}").format(
                    marts, sql.Identifier(f"{staging}__key"), sql.Identifier(f"{mart}__key_idx")
                )
            )
        if fingerprint is not None:  # in the swap's transaction: never ahead of the table
            _record_fingerprint(conn, mart, fingerprint)


FAULT_PAUSE = "LAKEPULSE_FAULT_PAUSE_IN_PUBLISH"


def _fault_pause(point: str, mart: str) -> None:
    """Fault injection for crash tests: with ``LAKEPULSE_FAULT_PAUSE_IN_PUBLISH=point:mart``
    (``swap``: after the renames; ``delta``: after the delete, before the insert) the publish
    stops there, inside the open transaction, so a test can SIGKILL it at exactly that point.
    Unset in production."""
    if os.environ.get(FAULT_PAUSE) == f"{point}:{mart}":
        print(f"paused: {point} of {mart}", flush=True)
        time.sleep(600)


def _record_fingerprint(conn: psycopg.Connection, mart: str, fingerprint: str) -> None:
    conn.execute(
        sql.SQL(
            "insert into {}.{} values (%s, %s, now()) on conflict (mart) do update "
            "set fingerprint = excluded.fingerprint, published_at = excluded.published_at"
        ).format(sql.Identifier(ADMIN_SCHEMA), sql.Identifier(FINGERPRINTS_TABLE)),
        [mart, fingerprint],
    )


def publish(
    settings: Settings,
    pg_url: str,
    marts: dict[str, tuple[str, ...]] | None = None,
    force: bool = False,
    on_wait: Callable[[], None] | None = None,
    source: Path | None = None,
) -> PublishResult:
    """Copy every mart that changed since the last publish (every mart with ``force``) from
        the read replica to PostgreSQL schema ``marts``, each swapped in atomically. One publish at
        a time per data directory, and never during a cycle of the pipeline worker (the pipeline
    lock): another is waited for, after ``on_wait``.

        ``source``: read the marts from this DuckDB file instead of the replica. The pipeline
        worker, which owns the warehouse between its builds, publishes a tier from the warehouse
        itself, so no copy of the marts stands between a build and BI."""
    with (
        exclusive_lock(settings.pipeline_lock_path, on_wait=on_wait),
        exclusive_lock(settings.publish_lock_path, on_wait=on_wait),
    ):
        return _publish(settings, pg_url, marts or MARTS, force, source or settings.replica_path)


def _publish(
    settings: Settings,
    pg_url: str,
    marts: dict[str, tuple[str, ...]],
    force: bool,
    source: Path,
) -> PublishResult:
    started = time.perf_counter()
    ensure_serving(pg_url)
    duck = connect(delta=False)  # DuckDB files and PostgreSQL only
    load_postgres(duck)
    # The read replica (a consistent copy of the last build that no build ever locks), or the
    # warehouse when its owner publishes.
    duck.execute(f"attach '{source}' as wh (read_only)")
    duck.execute(f"attach '{pg_url}' as pg (type postgres)")
    duck.execute(f"attach '{settings.published_state_path}' as ps")
    duck.execute(
        "create table if not exists ps.fingerprints (mart varchar primary key, fingerprint varchar)"
    )
    available = {
        row[0]
        for row in duck.execute(
            "select table_name from information_schema.tables where table_catalog = 'wh' and table_schema = ?",
            [SCHEMA],
        ).fetchall()
    }
    rows, skipped, unchanged, deltas = {}, [], [], {}
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            live = _live_fingerprints(conn)
            for mart, index_columns in marts.items():
                if mart not in available:
                    skipped.append(mart)
                    continue
                # The large marts' rows are hashed once: their fingerprint, delta and state.
                fingerprint = (
                    _hash_rows(duck, mart) if mart in DELTA_KEYS else _fingerprint(duck, mart)
                )
                if not force and live.get(mart) == fingerprint:
                    unchanged.append(mart)
                    continue
                if not force and mart in DELTA_KEYS and _state_matches(duck, mart, live):
                    rows[mart] = int(fingerprint.split(":", 1)[0])
                    deltas[mart] = _publish_delta(duck, conn, mart, fingerprint)
                    continue
                staging = f"{mart}__publishing"
                conn.execute(
                    sql.SQL("drop table if exists {}.{}").format(
                        sql.Identifier(SCHEMA), sql.Identifier(staging)
                    )
                )
                # DuckDB's catalog of `pg` still lists a staging table a killed publish left
                # behind: forget it, or the copy below fills a table that is no longer there.
                duck.execute("call pg_clear_cache()")
                duck.execute(
                    f'create table pg.{SCHEMA}."{staging}" as select * from wh.{SCHEMA}."{mart}"'
                )
                _swap(conn, mart, staging, index_columns, fingerprint)
                rows[mart] = int(fingerprint.split(":", 1)[0])
                if mart in DELTA_KEYS:
                    _remember_state(duck, mart, fingerprint)
            _record_freshness(conn, list(rows), unchanged)
    finally:
        duck.close()
    return PublishResult(rows, time.perf_counter() - started, skipped, unchanged, deltas)


def _state_matches(duck, mart: str, live: dict[str, str]) -> bool:
    """Whether the published state kept here describes the live table (a crash between the
    publish's commit and the state's update, or another publisher, leaves it behind)."""
    row = duck.execute("select fingerprint from ps.fingerprints where mart = ?", [mart]).fetchone()
    return row is not None and live.get(mart) == row[0]


def _hash_rows(duck, mart: str) -> str:
    """Keys and row hashes of a large mart into temp table ``current_rows``; returns its
    fingerprint, the same as :func:`_fingerprint` computes from the rows."""
    keys = ", ".join(DELTA_KEYS[mart])
    duck.execute(
        f"create or replace temp table current_rows as select {keys}, hash(m) as row_hash "
        f'from wh.{SCHEMA}."{mart}" as m'
    )
    return _digest(duck, "current_rows", "row_hash")


def _remember_state(duck, mart: str, fingerprint: str, changed: str | None = None) -> None:
    """Keep the keys and row hashes of what was just published (``current_rows``, from
    :func:`_hash_rows`), after its commit, in one transaction with its fingerprint. After a
    delta only the ``changed`` keys (a temp table) are replaced: rewriting the whole state
    would write every key of a 1.7 M-row mart to disk each minute."""
    duck.execute("begin")
    try:
        if changed is None:
            duck.execute(f'create or replace table ps."{mart}" as select * from current_rows')
        else:
            keys = DELTA_KEYS[mart]
            matches = " and ".join(f"s.{k} = c.{k}" for k in keys)
            duck.execute(f'delete from ps."{mart}" as s using {changed} as c where {matches}')
            duck.execute(
                f'insert into ps."{mart}" select * from current_rows '
                f"semi join {changed} using ({', '.join(keys)})"
            )
        duck.execute("insert or replace into ps.fingerprints values (?, ?)", [mart, fingerprint])
        duck.execute("commit")
    except BaseException:
        duck.execute("rollback")
        raise


def _publish_delta(duck, conn: psycopg.Connection, mart: str, fingerprint: str) -> int:
    """Publish the rows of ``mart`` added, changed or gone since the published state, in one
    PostgreSQL transaction; returns how many keys it touched. Reads ``current_rows``
    (:func:`_hash_rows`)."""
    keys = DELTA_KEYS[mart]
    key_list = ", ".join(keys)
    admin, target = sql.Identifier(ADMIN_SCHEMA), sql.Identifier(mart)
    changed_keys, changed_rows = f"{mart}__delta_keys", f"{mart}__delta_rows"
    duck.execute(
        f"create or replace temp table delta_keys as "
        f'select {key_list} from current_rows anti join ps."{mart}" using ({key_list}, row_hash) '
        f'union all select {key_list} from ps."{mart}" anti join current_rows using ({key_list})'
    )
    for staged in (changed_keys, changed_rows):
        conn.execute(sql.SQL("drop table if exists {}.{}").format(admin, sql.Identifier(staged)))
    duck.execute("call pg_clear_cache()")  # as in _publish: a killed delta's staged tables
    duck.execute(f'create table pg.{ADMIN_SCHEMA}."{changed_keys}" as select * from delta_keys')
    duck.execute(
        f'create table pg.{ADMIN_SCHEMA}."{changed_rows}" as select m.* '
        f'from wh.{SCHEMA}."{mart}" as m semi join delta_keys using ({key_list})'
    )
    matches = sql.SQL(" and ").join(
        sql.SQL("t.{k} = d.{k}").format(k=sql.Identifier(k)) for k in keys
    )
    with conn.transaction():
        conn.execute(
            sql.SQL("delete from {}.{} as t using {}.{} as d where {}").format(
                sql.Identifier(SCHEMA), target, admin, sql.Identifier(changed_keys), matches
            )
        )
        _fault_pause("delta", mart)
        conn.execute(
            sql.SQL("insert into {}.{} select * from {}.{}").format(
                sql.Identifier(SCHEMA), target, admin, sql.Identifier(changed_rows)
            )
        )
        _record_fingerprint(conn, mart, fingerprint)
    for staged in (changed_keys, changed_rows):
        conn.execute(sql.SQL("drop table {}.{}").format(admin, sql.Identifier(staged)))
    touched = duck.execute("select count(*) from delta_keys").fetchone()[0]
    _remember_state(duck, mart, fingerprint, changed="delta_keys")
    return touched


def _fingerprint(duck, mart: str) -> str:
    """``rows:hash-sum`` of a mart in the replica: equal for equal contents, in any order
    (a sum, not an xor, so duplicate rows do not cancel out)."""
    return _digest(duck, f'wh.{SCHEMA}."{mart}" as m', "hash(m)")


def _digest(duck, relation: str, row_hash: str) -> str:
    """The fingerprint formula, written once: row count and the sum of ``row_hash``."""
    count, digest = duck.execute(
        f"select count(*), coalesce(sum({row_hash}::hugeint), 0) from {relation}"
    ).fetchone()
    return f"{count}:{digest}"


def _live_fingerprints(conn: psycopg.Connection) -> dict[str, str]:
    """Fingerprints of the marts live now (a mart dropped by hand since is not live)."""
    return {
        mart: fingerprint
        for mart, fingerprint in conn.execute(
            sql.SQL(
                "select f.mart, f.fingerprint from {}.{} f "
                "where to_regclass(format('%I.%I', {}::text, f.mart)) is not null"
            ).format(
                sql.Identifier(ADMIN_SCHEMA),
                sql.Identifier(FINGERPRINTS_TABLE),
                sql.Literal(SCHEMA),
            )
        ).fetchall()
    }


def _record_freshness(
    conn: psycopg.Connection, published: list[str], unchanged: Sequence[str] = ()
) -> None:
    """Swap in ``marts.mart_publish_freshness``: per tenant and mart just published, the publish
    time, its rows and the latest ``last_loaded_at`` (load time of the newest event it counts)
    where the mart has one. Marts found ``unchanged`` keep their rows with this publish's time
    (they are current: the build changed nothing in them). Rows of other marts not published
    this time are carried over, so a mart that stops publishing shows its age growing instead
    of vanishing."""
    marts, table = sql.Identifier(SCHEMA), sql.Identifier(FRESHNESS_TABLE)
    staging = sql.Identifier(f"{FRESHNESS_TABLE}__publishing")
    conn.execute(sql.SQL("drop table if exists {}.{}").format(marts, staging))
    conn.execute(
        sql.SQL(
            "create table {}.{} (tenant_id text not null, mart text not null, "
            "published_at timestamptz not null, row_count bigint not null, "
            "latest_loaded_at timestamptz)"
        ).format(marts, staging)
    )
    loaded_columns = {
        row[0]
        for row in conn.execute(
            "select table_name from information_schema.columns "
            "where table_schema = %s and column_name = 'last_loaded_at'",
            [SCHEMA],
        ).fetchall()
    }
    for mart in published:
        latest = sql.SQL("max(last_loaded_at)" if mart in loaded_columns else "null::timestamptz")
        conn.execute(
            sql.SQL(
                "insert into {}.{} select tenant_id, {}, now(), count(*), {} from {}.{} group by 1"
            ).format(marts, staging, sql.Literal(mart), latest, marts, sql.Identifier(mart))
        )
    exists = conn.execute("select to_regclass(%s)", [f"{SCHEMA}.{FRESHNESS_TABLE}"]).fetchone()[0]
    if exists:
        conn.execute(
            sql.SQL(
                "insert into {}.{} select tenant_id, mart, "
                "case when mart = any(%s) then now() else published_at end, "
                "row_count, latest_loaded_at from {}.{} where not (mart = any(%s))"
            ).format(marts, staging, marts, table),
            [list(unchanged), published],
        )
    _swap(conn, FRESHNESS_TABLE, f"{FRESHNESS_TABLE}__publishing", ("tenant_id", "mart"))


def tenant_role_name(tenant_id: str) -> str:
    return "bi_" + re.sub(r"[^a-z0-9_]", "_", tenant_id.lower())


def create_tenant_login(
    pg_url: str, tenant_id: str, password: str | None = None, customer_level: bool = False
) -> tuple[str, str]:
    """A login that sees only ``tenant_id``'s rows in every mart; returns (role, password).

    Without ``customer_level`` it reads the aggregate marts only; with it, the marts of
    :data:`CUSTOMER_LEVEL_MARTS` too. Calling again sets the access as asked (a reset may also
    take customer-level access away)."""
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
