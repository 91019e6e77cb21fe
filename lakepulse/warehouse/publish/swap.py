"""Swap publishing: a mart copied whole into a fresh table beside the live one (DuckDB's
postgres extension, binary COPY), given its indexes, grants and tenant policy, then swapped in
by renames in one transaction: a reader sees the old table or the new one, never a partial or
missing one. Also the fingerprints that tell a changed mart from an unchanged one."""

from __future__ import annotations

import os
import time

import psycopg
from psycopg import sql

from lakepulse.warehouse.publish.access import (
    ADMIN_SCHEMA,
    FINGERPRINTS_TABLE,
    SCHEMA,
    secure_table,
)

FAULT_PAUSE = "LAKEPULSE_FAULT_PAUSE_IN_PUBLISH"


def copy_and_swap(duck, conn: psycopg.Connection, mart, fingerprint: str) -> None:
    """Copy ``mart`` (a :class:`~lakepulse.warehouse.publish.marts.ServedMart`) from the
    attached warehouse ``wh`` into a staging table of ``pg``, then :func:`swap` it in."""
    staging = f"{mart.name}__publishing"
    conn.execute(
        sql.SQL("drop table if exists {}.{}").format(
            sql.Identifier(SCHEMA), sql.Identifier(staging)
        )
    )
    # DuckDB's catalog of `pg` still lists a staging table a killed publish left behind:
    # forget it, or the copy below fills a table that is no longer there.
    duck.execute("call pg_clear_cache()")
    duck.execute(f'create table pg.{SCHEMA}."{staging}" as select * from {SCHEMA}."{mart.name}"')
    swap(
        conn,
        mart.name,
        staging,
        mart.index,
        delta_key=mart.delta_key,
        customer_level=mart.customer_level,
        fingerprint=fingerprint,
    )


def swap(
    conn: psycopg.Connection,
    mart: str,
    staging: str,
    index_columns: tuple[str, ...],
    *,
    delta_key: tuple[str, ...] | None = None,
    customer_level: bool = False,
    fingerprint: str | None = None,
) -> None:
    """Index, secure and rename ``staging`` in as ``mart`` in one transaction (with its
    fingerprint, when given: never ahead of the table). A mart published as a delta also gets
    an index on its key, which the deltas delete by."""
    marts = sql.Identifier(SCHEMA)
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
        if delta_key:
            conn.execute(
                sql.SQL("create index {} on {}.{} ({})").format(
                    sql.Identifier(f"{staging}__key"),
                    marts,
                    new,
                    sql.SQL(", ").join(map(sql.Identifier, delta_key)),
                )
            )
        secure_table(conn, staging, customer_level)
        conn.execute(sql.SQL("drop table if exists {}.{}").format(marts, old))
        conn.execute(sql.SQL("alter table if exists {}.{} rename to {}").format(marts, live, old))
        conn.execute(sql.SQL("alter table {}.{} rename to {}").format(marts, new, live))
        fault_pause("swap", mart)
        conn.execute(sql.SQL("drop table if exists {}.{}").format(marts, old))
        conn.execute(
            sql.SQL("alter index {}.{} rename to {}").format(
                marts, sql.Identifier(f"{staging}__idx"), index
            )
        )
        if delta_key:
            conn.execute(
                sql.SQL("alter index {}.{} rename to {}").format(
                    marts, sql.Identifier(f"{staging}__key"), sql.Identifier(f"{mart}__key_idx")
                )
            )
        if fingerprint is not None:
            record_fingerprint(conn, mart, fingerprint)


def fault_pause(point: str, mart: str) -> None:
    """Fault injection for crash tests: with ``LAKEPULSE_FAULT_PAUSE_IN_PUBLISH=point:mart``
    (``swap``: after the renames; ``delta``: after the delete, before the insert) the publish
    stops there, inside the open transaction, so a test can SIGKILL it at exactly that point.
    Unset in production."""
    if os.environ.get(FAULT_PAUSE) == f"{point}:{mart}":
        print(f"paused: {point} of {mart}", flush=True)
        time.sleep(600)


def record_fingerprint(conn: psycopg.Connection, mart: str, fingerprint: str) -> None:
    """The fingerprint of the content just made live (in the caller's transaction)."""
    conn.execute(
        sql.SQL(
            "insert into {}.{} values (%s, %s, now()) on conflict (mart) do update "
            "set fingerprint = excluded.fingerprint, published_at = excluded.published_at"
        ).format(sql.Identifier(ADMIN_SCHEMA), sql.Identifier(FINGERPRINTS_TABLE)),
        [mart, fingerprint],
    )


def fingerprint(duck, mart: str) -> str:
    """``rows:hash-sum`` of a mart in the replica: equal for equal contents, in any order
    (a sum, not an xor, so duplicate rows do not cancel out)."""
    return digest(duck, f'{SCHEMA}."{mart}" as m', "hash(m)")


def digest(duck, relation: str, row_hash: str) -> str:
    """The fingerprint formula, written once: row count and the sum of ``row_hash``."""
    count, total = duck.execute(
        f"select count(*), coalesce(sum({row_hash}::hugeint), 0) from {relation}"
    ).fetchone()
    return f"{count}:{total}"


def live_fingerprints(conn: psycopg.Connection) -> dict[str, str]:
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
