"""Erasure: `lakepulse erase` removes one user from the landing log, bronze (with every old
file version), the warehouse, its replica and PostgreSQL, and nothing of the user remains
anywhere on disk; other users are untouched and an audit record (without the id) stays."""

import dataclasses
import gzip
import subprocess
import sys

import duckdb
import orjson
import psycopg
import pyarrow.parquet as pq
import pytest

from lakepulse.core.settings import Settings
from tests.conftest import land_simulated

pytestmark = pytest.mark.integration


def places_holding(settings: Settings, needles: set[str]) -> list[str]:
    """Every file under LAKEPULSE_HOME that holds one of ``needles``, read the way its format
    needs: raw bytes for all, decompressed gzip, decoded Parquet columns, DuckDB tables."""
    raw = [n.encode() for n in needles]
    found = []
    for path in sorted(settings.home.rglob("*")):
        if not path.is_file() or path.suffix == ".lock":
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        if any(n in data for n in raw):
            found.append(str(path.relative_to(settings.home)))
        elif path.suffix == ".parquet":
            table = pq.read_table(path)
            text = orjson.dumps(table.to_pylist(), default=str)
            if any(n in text for n in raw):
                found.append(str(path.relative_to(settings.home)))
        elif path.suffix == ".duckdb":
            conn = duckdb.connect(str(path), read_only=True)
            try:
                columns = conn.execute(
                    "select table_schema, table_name, column_name from information_schema.columns "
                    "where data_type = 'VARCHAR'"
                ).fetchall()
                for schema, table, column in columns:
                    hits = conn.execute(
                        f'select count(*) from "{schema}"."{table}" where "{column}" in '
                        f"(select unnest(?::varchar[]))",
                        [sorted(needles)],
                    ).fetchone()[0]
                    if hits:
                        found.append(f"{path.relative_to(settings.home)}:{schema}.{table}.{column}")
            finally:
                conn.close()
    return found


def test_erase_leaves_nothing_of_the_user_on_disk(settings, workspace, postgres_url):
    from ingestion.tenants import TenantRegistry

    TenantRegistry(settings.tenants_file).add("acme")
    land_simulated(settings, 6_000)
    workspace.ingest()
    # A second load after compaction-free appends: old versions of the files exist.
    land_simulated(settings, 2_000, seed=11)
    workspace.ingest()
    (user_id, orders), *_ = workspace.sql(
        "select user_id, count(*) filter (where event = 'Order Completed') as orders "
        "from raw.events where tenant_id = 'acme' and user_id is not null "
        "group by user_id order by orders desc, user_id limit 1"
    )
    assert orders >= 1
    ids = {user_id} | {
        r[0]
        for r in workspace.sql(
            f"select distinct anonymous_id from raw.events where user_id = '{user_id}'"
        )
    }
    served = dataclasses.replace(settings, pg_url=postgres_url)
    env = served.process_env()
    cli = [sys.executable, "-m", "lakepulse.cli"]
    subprocess.run([*cli, "build"], env=env, check=True, capture_output=True)
    # The user signed in, so the welcome trigger fires for them (and writes its event back).
    subprocess.run([*cli, "triggers", "fire"], env=env, check=True, capture_output=True)
    subprocess.run([*cli, "publish"], env=env, check=True, capture_output=True)
    # The firings' `Trigger Fired` events are in bronze before the erasure counts (it loads
    # what is pending first), the user's own among them.
    workspace.ingest()
    bronze_before = workspace.sql("select count(*) from raw.events")[0][0]
    listed = ", ".join(f"'{i}'" for i in sorted(ids))
    user_rows = workspace.sql(
        f"select count(*) from raw.events where tenant_id = 'acme' and "
        f"(user_id = '{user_id}' or anonymous_id in ({listed}))"
    )[0][0]
    before = places_holding(settings, ids)
    # The search finds the user where they are: landing, bronze, warehouse, replica, firings.
    for place in (
        "landing/",
        "lake/raw/events/",
        "warehouse/lakepulse.duckdb",
        "read.duckdb",
        "lake/triggers/firings/",
    ):
        assert any(place in p for p in before), (place, before)

    out = subprocess.run(
        [*cli, "erase", "--tenant", "acme", "--user", user_id, "--yes"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "marts rebuilt and republished" in out

    assert places_holding(settings, ids) == []
    assert workspace.sql("select count(*) from raw.events")[0][0] == bronze_before - user_rows
    assert workspace.sql("select count(*) from marts.fct_sessions")[0][0] > 0
    with psycopg.connect(postgres_url) as conn:
        for table, column in (("fct_sessions", "user_key"), ("dim_users", "user_key")):
            count = conn.execute(
                f"select count(*) from marts.{table} where {column} = any(%s)", [sorted(ids)]
            ).fetchone()[0]
            assert count == 0, table
        assert conn.execute("select count(*) from marts.fct_sessions").fetchone()[0] > 0

    audit = (settings.home / "audit" / "erasures.jsonl").read_text().splitlines()
    record = orjson.loads(audit[-1])
    assert record["tenant_id"] == "acme" and record["bronze_rows_removed"] == user_rows
    assert user_id not in audit[-1]
