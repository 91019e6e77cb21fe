"""The Dagster instance lakepulse writes: SQLite under $DAGSTER_HOME by default, and run,
event-log and schedule storage on a real PostgreSQL server when LAKEPULSE_DAGSTER_PG_URL is
set."""

import dagster as dg
import psycopg
import pytest
import yaml

from lakepulse.core.dagster_instance import ensure_instance

pytestmark = pytest.mark.integration


@dg.asset
def heartbeat() -> int:
    return 1


def run_once(settings) -> tuple[str, str]:
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        result = dg.materialize([heartbeat], instance=instance)
        assert result.success
        return type(instance.run_storage).__name__, result.run_id


def test_sqlite_by_default(settings, monkeypatch):
    monkeypatch.delenv("LAKEPULSE_DAGSTER_PG_URL", raising=False)
    ensure_instance(settings)
    config = yaml.safe_load((settings.dagster_home / "dagster.yaml").read_text())
    assert "storage" not in config and config["telemetry"] == {"enabled": False}
    storage, _ = run_once(settings)
    assert storage == "SqliteRunStorage"


def test_postgres_storage_from_the_environment(settings, postgres_url, monkeypatch):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("drop database if exists dagster_instance_test")
        conn.execute("create database dagster_instance_test")
    url = postgres_url.replace("/postgres?", "/dagster_instance_test?", 1)
    if url == postgres_url:  # a TCP URL without query
        url = postgres_url.rsplit("/", 1)[0] + "/dagster_instance_test"
    monkeypatch.setenv("LAKEPULSE_DAGSTER_PG_URL", url)
    ensure_instance(settings)
    text = (settings.dagster_home / "dagster.yaml").read_text()
    assert "LAKEPULSE_DAGSTER_PG_URL" in text and "postgres@" not in text  # secrets stay in env

    storage, run_id = run_once(settings)
    assert storage == "PostgresRunStorage"
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        assert instance.get_run_by_id(run_id).is_success
        events = instance.get_latest_materialization_event(dg.AssetKey("heartbeat"))
        assert events is not None and events.run_id == run_id
    with psycopg.connect(url) as conn:
        assert (
            conn.execute("select count(*) from runs where run_id = %s", [run_id]).fetchone()[0] == 1
        )
        assert (
            conn.execute("select count(*) from event_logs where run_id = %s", [run_id]).fetchone()[
                0
            ]
            > 0
        )
