"""Delta publishing of the large marts (a row per session or user, which every minute changes a
few of): when PostgreSQL holds what the last publish left there, the keys of the rows added,
changed or gone since then (found by comparing row hashes with the published state kept beside
the warehouse, ``Settings.published_state_path``) are deleted and the new rows inserted, in one
transaction, so a reader sees the table before or after, never between. The state is trusted
only while its fingerprint matches the live table's."""

from __future__ import annotations

import psycopg
from psycopg import sql

from lakepulse.warehouse.publish.access import ADMIN_SCHEMA, SCHEMA
from lakepulse.warehouse.publish.swap import digest, fault_pause, record_fingerprint


def state_matches(duck, mart: str, live: dict[str, str]) -> bool:
    """Whether the published state kept here describes the live table (a crash between the
    publish's commit and the state's update, or another publisher, leaves it behind)."""
    row = duck.execute("select fingerprint from ps.fingerprints where mart = ?", [mart]).fetchone()
    return row is not None and live.get(mart) == row[0]


def hash_rows(duck, mart: str, key: tuple[str, ...]) -> str:
    """Keys and row hashes of a large mart into temp table ``current_rows``; returns its
    fingerprint, the same as :func:`~lakepulse.warehouse.publish.swap.fingerprint` computes
    from the rows."""
    duck.execute(
        f"create or replace temp table current_rows as select {', '.join(key)}, hash(m) as row_hash "
        f'from {SCHEMA}."{mart}" as m'
    )
    return digest(duck, "current_rows", "row_hash")


def remember_state(
    duck, mart: str, key: tuple[str, ...], fingerprint: str, changed: str | None = None
) -> None:
    """Keep the keys and row hashes of what was just published (``current_rows``, from
    :func:`hash_rows`), after its commit, in one transaction with its fingerprint. After a
    delta only the ``changed`` keys (a temp table) are replaced: rewriting the whole state
    would write every key of a 1.7 M-row mart to disk each minute."""
    duck.execute("begin")
    try:
        if changed is None:
            duck.execute(f'create or replace table ps."{mart}" as select * from current_rows')
        else:
            matches = " and ".join(f"s.{k} = c.{k}" for k in key)
            duck.execute(f'delete from ps."{mart}" as s using {changed} as c where {matches}')
            duck.execute(
                f'insert into ps."{mart}" select * from current_rows '
                f"semi join {changed} using ({', '.join(key)})"
            )
        duck.execute("insert or replace into ps.fingerprints values (?, ?)", [mart, fingerprint])
        duck.execute("commit")
    except BaseException:
        duck.execute("rollback")
        raise


def publish_delta(
    duck, conn: psycopg.Connection, mart: str, key: tuple[str, ...], fingerprint: str
) -> int:
    """Publish the rows of ``mart`` added, changed or gone since the published state, in one
    PostgreSQL transaction; returns how many keys it touched. Reads ``current_rows``
    (:func:`hash_rows`)."""
    key_list = ", ".join(key)
    duck.execute(
        f"create or replace temp table delta_keys as "
        f'select {key_list} from current_rows anti join ps."{mart}" using ({key_list}, row_hash) '
        f'union all select {key_list} from ps."{mart}" anti join current_rows using ({key_list})'
    )
    touched = send_delta(duck, conn, mart, key, fingerprint)
    remember_state(duck, mart, key, fingerprint, changed="delta_keys")
    return touched


def send_delta(
    duck, conn: psycopg.Connection, mart: str, key: tuple[str, ...], fingerprint: str
) -> int:
    """Replace in PostgreSQL the rows of ``mart`` whose keys temp table ``delta_keys`` holds
    (deleted, then the source's rows of those keys inserted) and record ``fingerprint``, in one
    transaction; returns how many keys it touched."""
    key_list = ", ".join(key)
    admin, target = sql.Identifier(ADMIN_SCHEMA), sql.Identifier(mart)
    changed_keys, changed_rows = f"{mart}__delta_keys", f"{mart}__delta_rows"
    for staged in (changed_keys, changed_rows):
        conn.execute(sql.SQL("drop table if exists {}.{}").format(admin, sql.Identifier(staged)))
    duck.execute("call pg_clear_cache()")  # as in the swap: a killed delta's staged tables
    duck.execute(f'create table pg.{ADMIN_SCHEMA}."{changed_keys}" as select * from delta_keys')
    # The rows of those keys, found by row id first: the key columns are read for every row,
    # the others only where the row ids found lie. An increment re-inserts the rows it
    # changed, so they sit in the table's last row groups (~0.05 s instead of ~0.25 s for a
    # session's 6,000 keys among 1.8 M rows).
    duck.execute(
        f'create table pg.{ADMIN_SCHEMA}."{changed_rows}" as '
        f"with changed as (select m.rowid as changed_rowid "
        f'from {SCHEMA}."{mart}" as m semi join delta_keys using ({key_list})) '
        f'select m.* from {SCHEMA}."{mart}" as m '
        f"semi join changed on m.rowid = changed.changed_rowid"
    )
    matches = sql.SQL(" and ").join(
        sql.SQL("t.{k} = d.{k}").format(k=sql.Identifier(k)) for k in key
    )
    with conn.transaction():
        conn.execute(
            sql.SQL("delete from {}.{} as t using {}.{} as d where {}").format(
                sql.Identifier(SCHEMA), target, admin, sql.Identifier(changed_keys), matches
            )
        )
        fault_pause("delta", mart)
        conn.execute(
            sql.SQL("insert into {}.{} select * from {}.{}").format(
                sql.Identifier(SCHEMA), target, admin, sql.Identifier(changed_rows)
            )
        )
        record_fingerprint(conn, mart, fingerprint)
    for staged in (changed_keys, changed_rows):
        conn.execute(sql.SQL("drop table {}.{}").format(admin, sql.Identifier(staged)))
    return duck.execute("select count(*) from delta_keys").fetchone()[0]
