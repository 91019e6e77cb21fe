"""The pipeline worker SIGKILLed at random moments, many times, while traffic keeps landing
(issue #25): the worker that comes back loses and duplicates nothing. Its marts then equal a
full refresh, PostgreSQL holds every landed event once and no session twice, and no trigger
fired twice.

CI kills one worker three times; ``pytest -m faults`` runs ten more seeds of six kills each."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from deltalake import DeltaTable

from lakepulse.core.settings import PROJECT_ROOT
from lakepulse.operations.worker import PipelineWorker
from tests.conftest import land_simulated
from tests.integration.test_worker import full_refresh_differences

pytestmark = pytest.mark.integration

CI_SEEDS = [(1, 3)]
FAULT_SEEDS = [(seed, 6) for seed in range(2, 12)]


def start_worker(settings) -> subprocess.Popen:
    """The worker in a process of its own, compacting bronze after almost every cycle (every 5
    minutes by default), so that kills land inside compactions too."""
    return subprocess.Popen(
        [sys.executable, "-m", "lakepulse.cli", "worker"],
        cwd=PROJECT_ROOT,
        env={**settings.process_env(), "LAKEPULSE_WORKER_COMPACT_S": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_at_random_moments(settings, seed: int, kills: int) -> int:
    """Start the worker, land a batch, SIGKILL the worker after a random delay (anywhere in
    its start, a load, a build, a publish, a firing or a compaction); ``kills`` times. Returns the events
    landed (distinct, counted from the landing log)."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=3)
    for kill in range(kills):
        worker = start_worker(settings)
        land_simulated(settings, 300 * (kill + 1), seed=seed, start=start, count=False)
        time.sleep(rng.uniform(3.0, 40.0))
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    return simulated_events(settings)


def simulated_events(settings) -> int:
    """Distinct events the simulator landed (counted from the landing log, without the
    `Trigger Fired` events the firings wrote back beside them)."""
    from ingestion.landing import LandingLog
    from tests.conftest import landing_rows

    return len(
        {
            (row["tenant_id"], row["message_id"])
            for landed in LandingLog(settings.landing_dir).files("events")
            for row in landing_rows(landed.path)
            if row.get("event") != "Trigger Fired"
        }
    )


def caught_up(settings) -> None:
    """A worker in this process cycles until it has nothing left to build."""
    worker = PipelineWorker(settings)
    for _ in range(5):
        report = worker.cycle()
        assert report.error is None, report.error
        if not report.tiers:
            return
    pytest.fail("the worker kept finding work")


def check_nothing_lost_or_doubled(settings, landed: int) -> None:
    pg_url = settings.pg_url
    with psycopg.connect(pg_url) as conn:
        events = conn.execute("select sum(events) from marts.mart_event_volume").fetchone()[0]
        doubled = conn.execute(
            "select count(*) from (select tenant_id, session_id from marts.fct_sessions "
            "group by tenant_id, session_id having count(*) > 1) as doubled"
        ).fetchone()[0]
        sessions = conn.execute("select count(*) from marts.fct_sessions").fetchone()[0]
    # Events of the demo's own reactions ('Trigger Fired') are landed by the firing, not by us.
    import duckdb

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as wh:
        ours = wh.sql(
            "select count(*) from staging.stg_events where event_name is distinct from "
            "'Trigger Fired'"
        ).fetchone()[0]
        built_sessions = wh.sql("select count(*) from marts.fct_sessions").fetchone()[0]
        reactions = wh.sql(
            "select count(*) from staging.stg_events where event_name = 'Trigger Fired'"
        ).fetchone()[0]
    assert ours == landed
    assert events == landed + reactions
    assert doubled == 0 and sessions == built_sessions
    if settings.trigger_firings_path.exists():
        firings = DeltaTable(str(settings.trigger_firings_path)).to_pyarrow_table()
        ids = firings.column("firing_id").to_pylist()
        assert len(ids) == len(set(ids))
    assert full_refresh_differences(settings) == {}


def run_kills(settings, pg_url: str, seed: int, kills: int) -> None:
    settings = dataclasses.replace(settings, pg_url=pg_url)
    landed = kill_at_random_moments(settings, seed, kills)
    caught_up(settings)
    check_nothing_lost_or_doubled(settings, landed)


@pytest.mark.parametrize(("seed", "kills"), CI_SEEDS)
def test_a_worker_killed_at_random_moments_loses_and_doubles_nothing(
    settings, tenant, second_tenant, fresh_database, seed, kills
):
    run_kills(settings, fresh_database, seed, kills)


@pytest.mark.faults
@pytest.mark.parametrize(("seed", "kills"), FAULT_SEEDS)
def test_more_kills(settings, tenant, second_tenant, fresh_database, seed, kills):
    run_kills(settings, fresh_database, seed, kills)
