"""``marts.mart_publish_freshness``: per tenant and mart, when the last publish swapped it in,
its rows and the latest load time it holds (the Operations dashboard's freshness chart)."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

from lakepulse.warehouse.publish.access import SCHEMA
from lakepulse.warehouse.publish.swap import swap

FRESHNESS_TABLE = "mart_publish_freshness"
"""Per tenant and mart: when the last publish swapped it in, its rows and latest load time."""


def record_freshness(
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
    swap(conn, FRESHNESS_TABLE, f"{FRESHNESS_TABLE}__publishing", ("tenant_id", "mart"))
