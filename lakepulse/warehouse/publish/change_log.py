"""Delta publishing from the increments' change logs: a mart with a delta key whose model is
built by the ``replace_scope`` strategy also logs, in each increment's own transaction, the
keys it deleted and inserted, stamped with the build's number
(``publish_log.<mart>__changes``, ``macros/incremental_replace_scope.sql``). The publish then
sends the rows of the keys logged since the build it last sent, instead of hashing every row
of a table with a row per session or user to find them (the session tier's publish spent
~6 s a turn on that at ten million events).

The live table's fingerprint says which log and build it holds (``log:<generation>:<build>``).
A build that is not incremental drops the log; its successor starts a new generation, which
the live table's fingerprint does not name, so that mart is copied whole once. So is one whose
log no longer reaches back to the build published (pruned)."""

from __future__ import annotations

import psycopg

from lakepulse.warehouse.publish.delta import send_delta

CHANGE_LOG_SCHEMA = "publish_log"
CHANGE_LOG_SUFFIX = "__changes"
LOG_FINGERPRINT = "log"


def logged_marts(duck) -> set[str]:
    """The marts with a change log in the source (attached as ``wh``)."""
    return {
        row[0].removesuffix(CHANGE_LOG_SUFFIX)
        for row in duck.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = current_database() and table_schema = ?",
            [CHANGE_LOG_SCHEMA],
        ).fetchall()
    }


def change_log_span(duck, mart: str) -> tuple[str, int, int] | None:
    """The generation of ``mart``'s change log and the first and last build it holds (None
    while it is empty)."""
    row = duck.execute(
        "select max(generation), min(change_seq), max(change_seq) "
        f'from {CHANGE_LOG_SCHEMA}."{mart}{CHANGE_LOG_SUFFIX}"'
    ).fetchone()
    return None if row[0] is None else (row[0], int(row[1]), int(row[2]))


def log_fingerprint(generation: str, build: int) -> str:
    return f"{LOG_FINGERPRINT}:{generation}:{build}"


def published_build(fingerprint: str | None, generation: str) -> int | None:
    """The build of log ``generation`` that the live table holds, from its recorded
    fingerprint (None: published otherwise, or from another generation)."""
    prefix = f"{LOG_FINGERPRINT}:{generation}:"
    if fingerprint is None or not fingerprint.startswith(prefix):
        return None
    return int(fingerprint.removeprefix(prefix))


def publish_logged_delta(
    duck,
    conn: psycopg.Connection,
    mart: str,
    key: tuple[str, ...],
    since: int,
    fingerprint: str,
) -> int:
    """Publish the rows of ``mart`` whose keys its change log holds after build ``since`` (the
    one published), in one PostgreSQL transaction; returns how many keys it touched."""
    duck.execute(
        f"create or replace temp table delta_keys as select distinct {', '.join(key)} "
        f'from {CHANGE_LOG_SCHEMA}."{mart}{CHANGE_LOG_SUFFIX}" where change_seq > ?',
        [since],
    )
    return send_delta(duck, conn, mart, key, fingerprint)
