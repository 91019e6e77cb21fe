"""Publishing the session tier from the increments' change logs: the worker sends PostgreSQL
the rows of the keys each increment deleted or inserted, instead of hashing every row of
tables with a row per session or user. Hand-built events whose increments *remove* keys (two
sessions merged by a late event, an anonymous user signing in) show that the log carries the
keys that left as well as those that came, and the full refresh and a log that no longer
reaches back show the fallback to a whole copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import psycopg
import pytest

from lakepulse.warehouse.publish import CHANGE_LOG_SCHEMA, publish
from tests.integration.test_incremental_marts import at, event, land

pytestmark = pytest.mark.integration

LOGGED = {
    "fct_sessions": ("tenant_id", "session_id"),
    "dim_users": ("tenant_id", "user_key"),
    "mart_buyer_signals": ("tenant_id", "user_key"),
}
"""The session tier's marts that keep a change log, and their unique keys (written out here,
not read from the code under test)."""
SHOP = "shop"

INCREMENTS = [
    [
        # d1: two visits 45 minutes apart, two sessions for now; d2: an anonymous visitor.
        event("e1", "d1", "page", "Home", at("10:00:00")),
        event("e2", "d1", "track", "Product Viewed", at("10:05:00")),
        event("e3", "d1", "track", "Product Added", at("10:50:00")),
        event("e4", "d2", "page", "Home", at("11:00:00")),
    ],
    [
        # A new visitor only: the first increment, whose log starts after a whole copy.
        event("e5", "d3", "page", "Home", at("12:00:00")),
    ],
    [
        # Late: bridges d1's two visits into one session (one session id leaves).
        event("e6", "d1", "track", "Cart Viewed", at("10:25:00")),
        # d2 signs in as u2: user d2 leaves, u2 comes.
        {
            "type": "identify",
            "messageId": "e7",
            "anonymousId": "d2",
            "userId": "u2",
            "timestamp": at("12:30:00"),
        },
        event("e8", "d3", "track", "Product Viewed", at("12:05:00")),
    ],
]


def pg_rows(url: str, mart: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return sorted(conn.execute(f"select * from marts.{mart}").fetchall(), key=repr)


def warehouse_rows(settings, mart: str) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        return sorted(conn.sql(f"select * from marts.{mart}").fetchall(), key=repr)


def keys(rows: list[tuple], settings, mart: str) -> set[tuple]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        columns = [row[0] for row in conn.sql(f"describe marts.{mart}").fetchall()]
    positions = [columns.index(column) for column in LOGGED[mart]]
    return {tuple(row[p] for p in positions) for row in rows}


def publish_increment(settings, workspace, url, messages, hours_ago: int):
    land(settings, [(SHOP, m) for m in messages], datetime.now(UTC) - timedelta(hours=hours_ago))
    workspace.ingest()
    workspace.build()
    return publish(settings, url, source=settings.warehouse_path)


def test_increments_publish_the_keys_their_change_log_holds(settings, workspace, fresh_database):
    url = fresh_database
    # The first build is not incremental (no log): every mart is copied whole.
    first = publish_increment(settings, workspace, url, INCREMENTS[0], hours_ago=3)
    assert set(LOGGED) <= set(first.rows) and not set(LOGGED) & set(first.deltas)
    before = {mart: pg_rows(url, mart) for mart in LOGGED}
    assert len([row for row in before["fct_sessions"] if row[0] == SHOP]) == 3

    # The first incremental build starts each log: the table in PostgreSQL came from no log,
    # so it is copied whole once more.
    second = publish_increment(settings, workspace, url, INCREMENTS[1], hours_ago=2)
    assert set(LOGGED) <= set(second.rows) and not set(LOGGED) & set(second.deltas)
    published = {mart: pg_rows(url, mart) for mart in LOGGED}

    # From then on, deltas from the log: the keys that left are deleted in PostgreSQL.
    third = publish_increment(settings, workspace, url, INCREMENTS[2], hours_ago=1)
    assert set(LOGGED) <= set(third.deltas), third
    for mart in LOGGED:
        rows = pg_rows(url, mart)
        assert rows == warehouse_rows(settings, mart), mart
        gone = keys(published[mart], settings, mart) - keys(rows, settings, mart)
        assert gone, f"{mart}: the increment removed a key (a merged session, a signed-in user)"
        assert third.deltas[mart] >= len(gone)
    d1_sessions = [row for row in pg_rows(url, "fct_sessions") if row[0] == SHOP and "d1" in row]
    assert len(d1_sessions) == 1, d1_sessions
    users = {key[1] for key in keys(pg_rows(url, "dim_users"), settings, "dim_users")}
    assert {"u2", "d1", "d3"} <= users and "d2" not in users

    # Nothing built since: nothing sent.
    again = publish(settings, url, source=settings.warehouse_path)
    assert set(LOGGED) <= set(again.unchanged)

    # A log that no longer reaches back to the published build (two builds, the older one
    # pruned) is not trusted.
    for message in (
        event("e9", "d4", "page", "Home", at("13:00:00")),
        event("e11", "d6", "page", "Home", at("13:10:00")),
    ):
        land(settings, [(SHOP, message)])
        workspace.ingest()
        workspace.build()
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        for mart in LOGGED:
            conn.execute(
                f"delete from {CHANGE_LOG_SCHEMA}.{mart}__changes where change_seq < "
                f"(select max(change_seq) from {CHANGE_LOG_SCHEMA}.{mart}__changes)"
            )
    pruned = publish(settings, url, source=settings.warehouse_path)
    assert set(LOGGED) <= set(pruned.rows) and not set(LOGGED) & set(pruned.deltas)

    # A full refresh drops each log (its keys describe the table it replaced): copied whole.
    land(settings, [(SHOP, event("e10", "d5", "page", "Home", at("14:00:00")))])
    workspace.ingest()
    workspace.build("--full-refresh")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        logs = conn.sql(
            "select table_name from information_schema.tables where table_schema = ?",
            params=[CHANGE_LOG_SCHEMA],
        ).fetchall()
    assert not {f"{mart}__changes" for mart in LOGGED} & {name for (name,) in logs}
    refreshed = publish(settings, url, source=settings.warehouse_path)
    for mart in LOGGED:
        assert mart not in refreshed.deltas
        assert pg_rows(url, mart) == warehouse_rows(settings, mart), mart
