"""One publish: every served mart that changed since the last publish, each by the cheapest
way that keeps readers safe (nothing when its fingerprint is the live table's, a delta when
it has a key and PostgreSQL holds what the last publish left there, else a copy swapped in),
then the freshness table."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import psycopg

from lakepulse.core.duck import connect, load_postgres
from lakepulse.core.locks import exclusive_lock
from lakepulse.core.settings import Settings
from lakepulse.warehouse.dbt import ensure_manifest
from lakepulse.warehouse.publish.access import SCHEMA, ensure_serving
from lakepulse.warehouse.publish.change_log import (
    change_log_span,
    log_fingerprint,
    logged_marts,
    publish_logged_delta,
    published_build,
)
from lakepulse.warehouse.publish.delta import (
    hash_rows,
    publish_delta,
    remember_state,
    state_matches,
)
from lakepulse.warehouse.publish.freshness import record_freshness, tenant_figures
from lakepulse.warehouse.publish.marts import ServedMart, served_marts
from lakepulse.warehouse.publish.swap import copy_and_swap, fingerprint, live_fingerprints


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


def publish(
    settings: Settings,
    pg_url: str,
    marts: Mapping[str, ServedMart] | None = None,
    force: bool = False,
    on_wait: Callable[[], None] | None = None,
    source: Path | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> PublishResult:
    """Copy every mart that changed since the last publish (every mart with ``force``) from
    the read replica to PostgreSQL schema ``marts``, each swapped in atomically. ``marts``: the
    served marts of the project's YAML (:func:`served_marts`) unless given. One publish at a
    time per data directory, and never during a cycle of the pipeline worker (the pipeline
    lock): another is waited for, after ``on_wait``.

    ``source``: read the marts from this DuckDB file instead of the replica. The pipeline
    worker, which owns the warehouse between its builds, publishes a tier from the warehouse
    itself, so no copy of the marts stands between a build and BI. ``connection``: a connection
    to the DuckDB database ``source`` already open in this process (the worker keeps the
    warehouse open between its cycles), which the publish then reads through, since DuckDB lets a
    process open a database file once."""
    with (
        exclusive_lock(settings.pipeline_lock_path, on_wait=on_wait),
        exclusive_lock(settings.publish_lock_path, on_wait=on_wait),
    ):
        if marts is None:
            marts = served_marts(ensure_manifest(settings))
        return _publish(settings, pg_url, marts, force, source or settings.replica_path, connection)


def _publish(
    settings: Settings,
    pg_url: str,
    marts: Mapping[str, ServedMart],
    force: bool,
    source: Path,
    connection: duckdb.DuckDBPyConnection | None,
) -> PublishResult:
    started = time.perf_counter()
    ensure_serving(pg_url)
    # The marts are read from the default database: the read replica (a consistent copy of the
    # last build that no build ever locks), or the warehouse when its owner publishes.
    if connection is None:
        duck = connect(delta=False)  # DuckDB files and PostgreSQL only
        duck.execute(f"attach '{source}' as wh (read_only)")
        duck.execute("use wh")
    else:
        duck = connection.cursor()
        for attached in ("pg", "ps"):  # left by a publish that failed half way
            duck.execute(f"detach database if exists {attached}")
    load_postgres(duck)
    duck.execute(f"attach '{pg_url}' as pg (type postgres)")
    duck.execute(f"attach '{settings.published_state_path}' as ps")
    duck.execute(
        "create table if not exists ps.fingerprints (mart varchar primary key, fingerprint varchar)"
    )
    available = {
        row[0]
        for row in duck.execute(
            "select table_name from information_schema.tables where table_catalog = current_database() and table_schema = ?",
            [SCHEMA],
        ).fetchall()
    }
    logged = logged_marts(duck)
    sent, skipped, unchanged, deltas = [], [], [], {}
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            live = live_fingerprints(conn)
            for mart in marts.values():
                name, key = mart.name, mart.delta_key
                if name not in available:
                    skipped.append(name)
                    continue
                log = change_log_span(duck, name) if key and name in logged else None
                if log is not None:
                    # The keys the increments changed since the publish, from their log.
                    generation, first, last = log
                    content = log_fingerprint(generation, last)
                    since = published_build(live.get(name), generation)
                    if not force and since == last:
                        unchanged.append(name)
                        continue
                    if not force and since is not None and since >= first - 1:
                        sent.append(name)
                        deltas[name] = publish_logged_delta(duck, conn, name, key, since, content)
                        continue
                elif key:  # the rows hashed once: their fingerprint, delta and state
                    content = hash_rows(duck, name, key)
                else:
                    content = fingerprint(duck, name)
                if not force and live.get(name) == content:
                    unchanged.append(name)
                    continue
                if not force and key and log is None and state_matches(duck, name, live):
                    sent.append(name)
                    deltas[name] = publish_delta(duck, conn, name, key, content)
                    continue
                copy_and_swap(duck, conn, mart, content)
                sent.append(name)
                if key and log is None:
                    remember_state(duck, name, key, content)
            # Each mart sent, counted once per tenant: its rows and the freshness table's.
            figures = {name: tenant_figures(duck, name) for name in sent}
            record_freshness(conn, figures, unchanged)
    finally:
        if connection is not None:  # what this attached to a database that outlives it
            for attached in ("pg", "ps"):
                duck.execute(f"detach database if exists {attached}")
        duck.close()
    rows = {name: sum(count for _, count, _ in figures[name]) for name in sent}
    return PublishResult(rows, time.perf_counter() - started, skipped, unchanged, deltas)
