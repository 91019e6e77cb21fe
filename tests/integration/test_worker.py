"""The pipeline worker (issue #25): each freshness tier built, published and fired on its own
cadence, in one process that keeps dbt warm; what it leaves equals a full refresh; the CLI's
build waits for its cycle; Dagster's sensor keeps one running. The worker killed at random
moments is in test_worker_killed.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import types
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from lakepulse.core.settings import PROJECT_ROOT
from lakepulse.operations.worker import PipelineWorker
from lakepulse.warehouse.tiers import Tier
from tests.conftest import hold_lock, land_simulated
from tests.integration.test_incremental_marts import warehouse_tables
from tests.integration.test_increments_property import differing_tenants

pytestmark = pytest.mark.integration

DAILY_SERVED = {
    "fct_experiment_snapshots",
    "mart_campaign_forecast",
    "mart_campaign_kpis",
    "mart_cohort_retention",
    "mart_customer_segments",
    "mart_experiment_results",
    "mart_model_accuracy",
    "mart_trigger_impact",
}
"""The published marts of the daily tier, as their YAML declares them."""
SLOW_TIERS = (Tier("live", 0.0, 15.0), Tier("session", 3600.0, 60.0), Tier("daily", 3600.0, 600.0))
"""Session and daily tiers whose cadence does not come round within a test."""


def published(pg_url: str, query: str):
    with psycopg.connect(pg_url) as conn:
        return conn.execute(query).fetchone()[0]


FIRED_AFTER_BUILD = {
    "fct_trigger_firings",
    "fct_trigger_deliveries",
    "mart_anomaly_alerts",
    "mart_trigger_impact",
}
"""Models of the firings and deliveries tables, which a cycle writes after its builds: the
next cycle models them, and a full refresh made at once is a cycle ahead."""


def full_refresh_differences(settings) -> dict[str, set[str]]:
    """The warehouse's tables against a dbt full refresh of a copy of it (bronze unchanged)."""
    from lakepulse.warehouse.dbt import run_dbt

    incremental = warehouse_tables(settings)
    saved = settings.home / "incremental.duckdb"
    shutil.copyfile(settings.warehouse_path, saved)
    try:
        run_dbt(settings, "run", "--full-refresh", capture=True)
        rebuilt = warehouse_tables(settings)
    finally:
        shutil.copyfile(saved, settings.warehouse_path)
    differences = differing_tenants(incremental, rebuilt)
    return {table: diff for table, diff in differences.items() if table not in FIRED_AFTER_BUILD}


def test_tiers_build_on_their_cadence_publish_their_marts_and_equal_a_full_refresh(
    settings, tenant, second_tenant, fresh_database
):
    import dataclasses

    settings = dataclasses.replace(settings, pg_url=fresh_database)
    start = datetime.now(UTC) - timedelta(hours=2)
    first = land_simulated(settings, 600, seed=3, start=start)
    worker = PipelineWorker(settings, tiers=SLOW_TIERS)

    report = worker.cycle()
    assert report.error is None
    assert report.tiers == ["live", "session", "daily"]  # a new worker catches every tier up
    assert report.bronze_passed is True
    events = "select coalesce(sum(events), 0) from marts.mart_event_volume"
    sessions = "select count(*) from marts.fct_sessions"
    assert published(fresh_database, events) == first  # counted by the landing log, not by us
    sessions_before = published(fresh_database, sessions)
    assert sessions_before > 0

    later = land_simulated(settings, 1200, seed=4, start=start, count=True)
    report = worker.cycle()
    assert report.error is None
    assert report.tiers == ["live"]  # the session and daily tiers are not due
    assert published(fresh_database, events) == later
    assert published(fresh_database, sessions) == sessions_before
    assert "fct_sessions" not in report.published

    assert worker.cycle().tiers == []  # nothing new landed: nothing to build

    # dbt's log of the worker's builds: in the data directory, a line a node, no statements
    dbt_log = (settings.home / "logs" / "dbt.log").read_text()
    assert "OK created sql incremental model staging.stg_events" in dbt_log
    assert "[debug]" not in dbt_log

    catch_up = PipelineWorker(settings)  # the default cadence: every tier is due for it
    report = catch_up.cycle()
    assert report.error is None and report.tiers == ["live", "session", "daily"]
    assert published(fresh_database, sessions) > sessions_before
    assert full_refresh_differences(settings) == {}


def test_a_slower_tiers_turn_is_spread_over_cycles_a_step_each(
    settings, tenant, second_tenant, fresh_database, monkeypatch
):
    """The live tier waits for at most one step of a session turn: its build in one cycle, its
    publish (and firing) in the next, while live marts go out in every cycle. Every turn, the
    first (a catch-up) included, runs under DuckDB's memory limit."""
    import dataclasses

    from lakepulse.core.duck import (
        MEMORY_LIMIT_ENV,
        THREADS_ENV,
        WORKER_MEMORY_LIMIT,
        WORKER_THREADS,
    )

    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    monkeypatch.delenv(THREADS_ENV, raising=False)

    settings = dataclasses.replace(settings, pg_url=fresh_database)
    start = datetime.now(UTC) - timedelta(hours=2)
    land_simulated(settings, 600, seed=3, start=start)
    tiers = (Tier("live", 0.0, 15.0), Tier("session", 0.01, 60.0), Tier("daily", 3600.0, 600.0))
    worker = PipelineWorker(settings, tiers=tiers)
    first = worker.cycle()
    assert first.tiers == ["live", "session", "daily"]  # the first turns: whole
    assert first.memory_limit == WORKER_MEMORY_LIMIT
    assert first.threads is None  # a catch-up: DuckDB's default, a thread per core
    events = "select coalesce(sum(events), 0) from marts.mart_event_volume"
    sessions = "select count(*) from marts.fct_sessions"
    sessions_before = published(fresh_database, sessions)

    later = land_simulated(settings, 1200, seed=4, start=start, count=True)
    report = worker.cycle()
    assert report.error is None and report.tiers == ["live", "session"]
    assert report.memory_limit == WORKER_MEMORY_LIMIT
    assert report.threads == WORKER_THREADS == 1
    assert {"dbt:session", "publish:live"} <= set(report.stages)
    assert "publish:session" not in report.stages
    assert published(fresh_database, events) == later  # live: out in the same cycle
    assert published(fresh_database, sessions) == sessions_before  # session: built, not out
    assert worker.turn is not None

    steps = []
    while worker.turn is not None and len(steps) < 10:
        report = worker.cycle()
        assert report.error is None and report.tiers in ([], ["session"])  # 2nd wave
        steps.append([stage for stage in report.stages if stage.endswith(":session")])
    # its second wave in the next cycle, then its publish (its firing comes with it)
    assert steps[0] == ["dbt:session"], steps
    assert steps[1][0] == "publish:session", steps
    assert all("dbt:session" not in step for step in steps[1:]), steps
    assert published(fresh_database, sessions) > sessions_before


def test_a_catch_up_that_runs_out_of_memory_under_the_limit_is_retried_without_it(
    settings, tenant, second_tenant, fresh_database, monkeypatch
):
    """A catch-up runs under the worker's memory limit; one that fails under it (here a real
    out-of-memory, the limit set far too low) is retried without a limit, and the cycles after
    a passing catch-up have the limit again."""
    import dataclasses

    from lakepulse.core.duck import MEMORY_LIMIT_ENV, WORKER_MEMORY_LIMIT

    monkeypatch.setenv(MEMORY_LIMIT_ENV, "2MB")
    settings = dataclasses.replace(settings, pg_url=fresh_database)
    start = datetime.now(UTC) - timedelta(hours=2)
    landed = land_simulated(settings, 600, seed=3, start=start)
    worker = PipelineWorker(settings)

    first = worker.cycle()
    assert first.memory_limit == "2MB"
    assert first.error and "out of memory" in first.error.lower(), first.error

    retried = worker.cycle()
    assert retried.memory_limit is None
    assert retried.error is None and retried.tiers == ["live", "session", "daily"]
    events = "select coalesce(sum(events), 0) from marts.mart_event_volume"
    assert published(fresh_database, events) == landed

    worker.memory_limit = WORKER_MEMORY_LIMIT  # one a cycle can run under
    later = land_simulated(settings, 300, seed=4, start=start, count=True)
    report = worker.cycle()
    assert report.error is None and report.tiers == ["live"]
    assert report.memory_limit == WORKER_MEMORY_LIMIT
    assert published(fresh_database, events) == later


def test_a_turns_waves_see_one_state_the_live_tier_moving_between_them(
    settings, tenant, second_tenant, tmp_path
):
    """A slower tier's turn builds in waves with live cycles between them, and new events
    load in each of those cycles: the tier's models at the turn's end equal a full refresh of
    the bronze its first wave saw, not a mix of that and what loaded after (a model that reads
    the live tier built in a later wave would count the later orders), and once the worker
    catches up the warehouse equals a full refresh of everything."""
    from lakepulse.core.settings import Settings
    from lakepulse.demo.simulator import Faults
    from lakepulse.warehouse.dbt import run_dbt
    from lakepulse.warehouse.tiers import tier_plan

    # One stream landed in three growing prefixes: visits, carts and orders run across the
    # cuts, with late events and retries (the same messageIds again), as a live shop sends.
    faults = Faults(duplicate_rate=0.05, late_rate=0.1, late_seconds=600)
    start = datetime.now(UTC) - timedelta(hours=2)
    tiers = (Tier("live", 0.0, 15.0), Tier("session", 0.01, 60.0), Tier("daily", 3600.0, 600.0))
    worker = PipelineWorker(settings, tiers=tiers)
    land_simulated(settings, 800, seed=5, start=start, faults=faults)
    assert worker.cycle().tiers == ["live", "session", "daily"]

    land_simulated(settings, 1600, seed=5, start=start, faults=faults)
    report = worker.cycle()  # the live tier, then the session turn's first wave
    assert report.error is None and report.tiers == ["live", "session"]
    assert "dbt:session" in report.stages and worker.turn is not None
    seen = tmp_path / "as_the_first_wave_saw"
    shutil.copytree(settings.home, seen, ignore=shutil.ignore_patterns("*.lock", "dagster"))

    land_simulated(settings, 2400, seed=5, start=start, faults=faults)
    report = worker.cycle()  # the live tier on the new load, then the second wave
    assert report.error is None and report.tiers == ["live", "session"]
    assert report.stages["load"] > 0 and worker.turn is not None

    plan = tier_plan(worker.dbt.manifest_path())
    session = plan.of("session") - FIRED_AFTER_BUILD
    after_turn = {t: rows for t, rows in warehouse_tables(settings).items() if t in session}
    then = Settings.from_env({"LAKEPULSE_HOME": str(seen)})
    run_dbt(then, "run", "--full-refresh", capture=True)
    rebuilt = {t: rows for t, rows in warehouse_tables(then).items() if t in session}
    assert set(after_turn) == set(rebuilt) and len(after_turn) > 10
    assert differing_tenants(after_turn, rebuilt) == {}
    assert len(after_turn["fct_sessions"]) > 0

    for _ in range(6):  # the turn's publish, then a turn on everything loaded
        assert worker.cycle().error is None
    assert PipelineWorker(settings).cycle().error is None  # the daily tier caught up too
    assert full_refresh_differences(settings) == {}


def test_a_tier_due_again_at_once_does_not_starve_a_slower_one(settings, tenant, second_tenant):
    """With events landing all the time the session tier is due again as soon as its turn
    ends; the daily tier, waiting longer for its cadence, still gets the next turn."""
    tiers = (Tier("live", 0.0, 15.0), Tier("session", 0.01, 60.0), Tier("daily", 0.01, 600.0))
    start = datetime.now(UTC) - timedelta(hours=2)
    land_simulated(settings, 300, seed=3, start=start)
    worker = PipelineWorker(settings, tiers=tiers)
    assert worker.cycle().tiers == ["live", "session", "daily"]
    turns, steps = [], None  # the tiers whose turns began, in order
    for seed in range(10, 18):
        land_simulated(settings, 20, seed=seed, start=start, count=False)
        report = worker.cycle()
        assert report.error is None
        if worker.turn is not None and worker.turn[1] is not steps:
            turns.append(worker.turn[0])
            steps = worker.turn[1]
    assert turns[:2] == ["session", "daily"], turns


def test_session_turns_go_before_a_daily_turn_under_way_which_still_moves_between_them(
    settings, tenant, second_tenant
):
    """A session turn that comes due while a daily turn is under way goes first; the daily
    turn then resumes where it stood (not from its start) and takes a step before a session
    turn may go first again, though the session tier is due in every cycle. The daily turn is
    two steps: its first wave, then its second with the marts' checks (its publish and firing
    come with them, not a session turn later). The marts at the end equal a full refresh. Time
    is moved by moving the tiers' last turns back, as the clock would."""
    tiers = (Tier("live", 0.0, 15.0), Tier("session", 30.0, 60.0), Tier("daily", 300.0, 600.0))
    start = datetime.now(UTC) - timedelta(hours=2)
    land_simulated(settings, 300, seed=3, start=start)
    worker = PipelineWorker(settings, tiers=tiers)
    assert worker.cycle().tiers == ["live", "session", "daily"]

    def cycle(seed: int, due: tuple[str, ...] = ()) -> list[str]:
        """The stages the cycle ran."""
        for tier in due:
            worker.built_at[tier] -= next(t.every_s for t in tiers if t.name == tier) + 1
        land_simulated(settings, 20, seed=seed, start=start, count=False)
        report = worker.cycle()
        assert report.error is None
        return list(report.stages)

    def tiers_stepping(stages: list[str]) -> set[str]:
        return {stage.split(":")[1] for stage in stages if stage.endswith((":session", ":daily"))}

    first_daily_step = cycle(10, due=("daily",))
    assert "dbt:daily" in first_daily_step and "checks:marts" not in first_daily_step
    assert worker.turn[0] == "daily" and worker.set_aside is None
    daily_steps = worker.turn[1]
    stepped = [tiers_stepping(cycle(11, due=("session",)))]  # due: its turn goes first
    assert worker.turn[0] == "session" and worker.set_aside == ("daily", daily_steps)
    last_daily_step = []
    for seed in range(12, 40):
        if daily_steps not in {t[1] for t in (worker.turn, worker.set_aside) if t}:
            break
        stages = cycle(seed, due=("session",))  # due in every cycle, as on a busy worker
        stepped.append(tiers_stepping(stages))
        if "daily" in stepped[-1]:
            last_daily_step = stages
    else:
        raise AssertionError(f"the daily turn never ended: {stepped}")
    # the session turn whole (two waves and its publish), then the daily's resumed step
    assert stepped == [{"session"}] * 3 + [{"daily"}], stepped
    assert {"dbt:daily", "checks:marts"} <= set(last_daily_step)
    for _ in range(6):  # every turn ends, then one on everything loaded
        assert worker.cycle().error is None
    assert PipelineWorker(settings).cycle().error is None
    assert full_refresh_differences(settings) == {}


def test_a_load_failing_the_bronze_suite_builds_nothing_until_a_good_one(settings, tenant):
    from ingestion.tenants import TenantRegistry

    # Events of a tenant nobody registered fail the suite's known-tenants expectation.
    land_simulated(settings, 50, seed=5, tenants={"intruder": "k9"})
    worker = PipelineWorker(settings, tiers=SLOW_TIERS)
    report = worker.cycle()
    assert report.bronze_passed is False and report.tiers == []
    assert "bronze suite failed" in report.error
    assert not settings.warehouse_path.exists()
    assert worker.cycle().tiers == []  # still nothing: the failed load stands
    TenantRegistry(settings.tenants_file).add("intruder")
    land_simulated(settings, 50, seed=6, tenants={"intruder": "k9"})
    report = worker.cycle()
    assert report.bronze_passed is True
    assert report.tiers == ["live", "session", "daily"]  # its first build catches all up


def test_lakepulse_build_waits_for_the_workers_cycle(settings, workspace, tenant):
    land_simulated(settings, 100, seed=7)
    workspace.ingest()
    holder = hold_lock(settings.pipeline_lock_path)  # a worker in the middle of a cycle
    try:
        build = subprocess.Popen(
            [sys.executable, "-m", "lakepulse.cli", "build", "--select", "stg_events"],
            cwd=PROJECT_ROOT,
            env=settings.process_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert "waiting for the pipeline worker" in build.stderr.readline()
        time.sleep(3)
        assert build.poll() is None and not settings.warehouse_path.exists()
    finally:
        holder.kill()
        holder.wait()
    assert build.wait(timeout=300) == 0, build.stderr.read()
    assert settings.warehouse_path.exists()


def test_the_loop_keeps_the_warehouse_open_until_another_process_waits_for_it(
    settings, tenant, second_tenant, monkeypatch
):
    """Between its cycles the worker holds the pipeline lock with the warehouse open (DuckDB
    keeps what it read), and lets both go as soon as another process waits: `lakepulse build`
    started meanwhile gets the warehouse, and the worker carries on after it."""
    monkeypatch.setenv("LAKEPULSE_WORKER_CYCLE_S", "1")
    start = datetime.now(UTC) - timedelta(hours=1)
    land_simulated(settings, 200, seed=8, start=start)
    open_after: list[bool] = []
    stop = threading.Event()
    worker = PipelineWorker(
        settings,
        tiers=SLOW_TIERS,
        on_cycle=lambda report: open_after.append(worker.dbt.warehouse() is not None),
    )
    loop = threading.Thread(target=worker.run, args=(stop,))
    loop.start()
    try:
        for batch in range(3):  # a worked cycle each, the warehouse kept open after it
            land_simulated(settings, 50, seed=20 + batch, start=start)
            deadline = time.monotonic() + 120
            while len(open_after) < batch + 2 and time.monotonic() < deadline:
                time.sleep(0.2)
        # (the first cycle, a catch-up, ends with the daily tier's replica: closed for the copy)
        assert len(open_after) >= 4 and all(open_after[1:]), open_after
        build = subprocess.run(
            [sys.executable, "-m", "lakepulse.cli", "build", "--select", "stg_events"],
            cwd=PROJECT_ROOT,
            env=settings.process_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert build.returncode == 0, build.stderr
        cycles = len(open_after)
        land_simulated(settings, 50, seed=30, start=start)
        deadline = time.monotonic() + 120
        while len(open_after) == cycles and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(open_after) > cycles  # the worker took the warehouse back
    finally:
        stop.set()
        loop.join(120)
    assert not loop.is_alive()
    assert worker.dbt.warehouse() is None  # closed when the loop ended
    assert PipelineWorker(settings).cycle().error is None  # every tier caught up
    assert full_refresh_differences(settings) == {}


def test_the_sensor_keeps_one_worker_run_and_replaces_a_dead_one(settings):
    import dagster as dg

    from orchestration import sensors
    from orchestration.jobs import pipeline_worker_job
    from orchestration.sensors import WORKER_START_GRACE_S, build_worker_sensor

    sensor = build_worker_sensor(pipeline_worker_job, settings)
    with dg.instance_for_test() as instance:
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert len(first.run_requests) == 1
        run = instance.create_run_for_job(pipeline_worker_job)
        instance.handle_run_event(
            run.run_id,
            dg.DagsterEvent(
                event_type_value=dg.DagsterEventType.RUN_START.value,
                job_name=run.job_name,
            ),
        )
        running = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert not running.run_requests  # just started: no heartbeat yet, within the grace

        # The same run, started long ago, whose worker never beat: dead. It is marked failed
        # and a new run requested.
        started = instance.get_run_record_by_id(run.run_id)
        assert started.start_time is not None
        stale = time.time() + WORKER_START_GRACE_S + 1
        with pytest.MonkeyPatch.context() as patch:  # the sensor's clock only
            patch.setattr(sensors, "time", types.SimpleNamespace(time=lambda: stale))
            replaced = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert len(replaced.run_requests) == 1
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_the_worker_fires_a_live_alert_and_delivers_it_on_its_own_thread(
    settings, tenant, second_tenant, tmp_path, monkeypatch
):
    """A metric_threshold alert (a sum above a value judges the minute still filling): the
    order that makes it true fires in the live tier's cycle, and the worker's delivery thread,
    started as soon as the firing is recorded, posts it to a real webhook; no sensor is
    involved."""
    import threading

    import yaml

    from lakepulse.demo.sink import WebhookSink
    from tests.delivery_support import webhook
    from tests.integration.test_incremental_marts import land

    now = datetime.now(UTC)
    land_simulated(settings, 200, seed=8, start=now - timedelta(minutes=20))
    with WebhookSink(secret="s3cret") as sink:
        triggers = tmp_path / "triggers.yml"
        triggers.write_text(
            yaml.safe_dump(
                {
                    "destinations": {"hook": webhook(sink.url)},
                    "triggers": [
                        {
                            "name": "big_revenue_minute",
                            "kind": "metric_threshold",
                            "metric": "revenue",
                            "window_minutes": 1,
                            "above": 1_000_000,
                            "tenants": ["acme"],
                            "cooldown_hours": 0,
                            "destinations": ["hook"],
                        }
                    ],
                }
            )
        )
        monkeypatch.setenv("LAKEPULSE_TRIGGERS_FILE", str(triggers))
        monkeypatch.setenv("HOOK_SECRET", "s3cret")
        worker = PipelineWorker(settings, tiers=SLOW_TIERS)
        assert worker.cycle().fired == 0  # the simulator's minutes are far below it
        order = {
            "type": "track",
            "event": "Order Completed",
            "messageId": "big-order",
            "anonymousId": "big-spender",
            "timestamp": datetime.now(UTC).isoformat(),
            "properties": {"order_id": "big-order", "revenue": 2_000_000},
        }
        land(settings, [("acme", order)])
        report = worker.cycle()
        assert report.fired == 1
        # The delivery began inside the cycle, right after the firing (a slower tier's step
        # later in the same cycle does not hold the alert back), on a thread of its own.
        assert worker.delivery is not None and worker.delivery is not threading.current_thread()
        worker.delivery.join(timeout=120)
    [request] = sink.requests
    assert request.json["trigger"] == "big_revenue_minute"
    assert request.json["tenant_id"] == "acme"
    assert request.signature_ok


def bronze_files(settings, version: int | None = None) -> dict[str, int]:
    """Bronze's events table at ``version`` (None: now): each data file and its size."""
    import pyarrow as pa
    from deltalake import DeltaTable

    table = DeltaTable(str(settings.bronze_events_path), version=version)
    adds = pa.table(table.get_add_actions(flatten=True))
    return dict(zip(adds["path"].to_pylist(), adds["size_bytes"].to_pylist(), strict=True))


def bronze_message_ids(settings, version: int) -> list[str]:
    from deltalake import DeltaTable

    table = DeltaTable(str(settings.bronze_events_path), version=version)
    return sorted(table.to_pyarrow_table(columns=["message_id"]).column("message_id").to_pylist())


def test_on_cycle_reports_beside_the_cycles_in_order_and_all_before_run_returns(
    settings, tenant, monkeypatch
):
    """Dagster's ``on_cycle`` writes a materialization per model to its event log, which took
    ~0.7 s a cycle: the next cycle does not wait for it. While ``on_cycle`` is held, the worker
    goes on cycling (its cycle log grows); released, it gets every report in order, each once,
    before ``run`` returns."""
    monkeypatch.setenv("LAKEPULSE_WORKER_CYCLE_S", "0.5")
    start = datetime.now(UTC) - timedelta(minutes=30)
    land_simulated(settings, 200, seed=50, start=start, count=False)
    held = threading.Event()
    reported: list[float] = []

    def on_cycle(report) -> None:
        held.wait(300)
        reported.append(report.started_at)

    stop = threading.Event()
    worker = PipelineWorker(settings, tiers=SLOW_TIERS, on_cycle=on_cycle)
    loop = threading.Thread(target=worker.run, args=(stop,))
    loop.start()
    try:
        deadline = time.monotonic() + 180
        batch = 0
        while time.monotonic() < deadline and len(cycle_log(settings)) < 4:
            land_simulated(settings, 20, seed=51 + batch, start=start, count=False)
            batch += 1
            time.sleep(1)
        assert len(cycle_log(settings)) >= 4  # cycles went on while the first report waited
        assert reported == []
    finally:
        held.set()
        stop.set()
        loop.join(120)
    assert not loop.is_alive()
    assert reported == [cycle["started_at"] for cycle in cycle_log(settings)]


def cycle_log(settings) -> list[dict]:
    import json

    path = settings.worker_cycles_path
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_worker_compacts_what_its_loads_wrote_between_its_cycles(
    settings, tenant, second_tenant, monkeypatch
):
    """Every few minutes the worker compacts the small files its loads wrote, between two
    cycles (no compaction run beside it): fewer files, the same rows, and a file already as
    large as the worker's target left as it is (the work is what landed since, not today's
    partition whole)."""
    from deltalake import DeltaTable

    from lakepulse.operations import worker as worker_module

    monkeypatch.setenv("LAKEPULSE_WORKER_CYCLE_S", "0.5")
    start = datetime.now(UTC) - timedelta(minutes=30)
    land_simulated(settings, 3_000, seed=40, start=start, count=False)
    worker = PipelineWorker(settings, tiers=SLOW_TIERS)
    assert worker.cycle().error is None
    # The first load's file (the largest) is as large as the target: not to be rewritten.
    target = max(bronze_files(settings).values())
    for batch in range(6):  # a load each, a small file each
        land_simulated(settings, 40, seed=41 + batch, start=start, count=False)
        assert worker.cycle().error is None

    monkeypatch.setenv("LAKEPULSE_WORKER_COMPACT_S", "0.01")
    monkeypatch.setattr(worker_module, "WORKER_COMPACTED_FILE_BYTES", target)
    reports = []
    stop = threading.Event()
    worker = PipelineWorker(settings, tiers=SLOW_TIERS, on_cycle=reports.append)
    loop = threading.Thread(target=worker.run, args=(stop,))
    loop.start()
    try:
        deadline = time.monotonic() + 120
        while not any("compact" in r.stages for r in reports) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        loop.join(120)
    assert not loop.is_alive()
    assert next(r for r in reports if "compact" in r.stages).error is None
    # The compaction's commit against the version before it (the worker's loads go on around it).
    history = DeltaTable(str(settings.bronze_events_path)).history()
    compacted = min(c["version"] for c in history if c["operation"] == "OPTIMIZE")  # the first
    before, after = bronze_files(settings, compacted - 1), bronze_files(settings, compacted)
    assert len(before) >= 7  # the first load's file and one a later load
    kept = {path for path, size in before.items() if size >= target}
    assert kept and kept <= set(after)  # the large file untouched
    assert len(after) < len(before)  # the small ones merged
    assert bronze_message_ids(settings, compacted) == bronze_message_ids(settings, compacted - 1)
    assert worker.cycle().error is None
    assert full_refresh_differences(settings) == {}


def test_the_hourly_compaction_skips_while_a_worker_compacts(settings):
    import dagster as dg

    from lakepulse.core.heartbeat import beat
    from orchestration.schedules import build_compaction_schedule

    schedule = build_compaction_schedule(settings)
    with dg.instance_for_test() as instance:
        alone = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
        assert len(alone.run_requests) == 1  # no worker: the schedule compacts
        beat(settings.worker_heartbeat_path)  # this process, beating now: a worker runs
        beside = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
        assert not beside.run_requests and "worker compacts" in beside.skip_message


def test_the_workers_run_keeps_the_freshness_checks_fresh_without_a_run_of_their_own(
    settings, tenant, second_tenant
):
    """The worker's run reports each served mart's freshness with its materialization, so the
    freshness sensor finds nothing to run while the worker keeps the marts fresh; when the
    reports stop, it runs each check again once its tier's bound has passed (five minutes for
    the live and session marts, ten for the daily ones), which then judges staleness."""
    import dagster as dg
    from dagster._core.test_utils import freeze_time

    from lakepulse.core.dagster_instance import ensure_instance
    from orchestration.definitions import build_definitions

    land_simulated(settings, 300, seed=50, start=datetime.now(UTC) - timedelta(minutes=30))
    ensure_instance(settings)
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        definitions = build_definitions(settings)
        sensor = definitions.resolve_sensor_def("freshness_checks_sensor")

        def tick():  # a new context each time: a cursor would resume after the last key seen
            return dg.build_sensor_context(instance=instance, definitions=definitions)

        never = sensor.evaluate_tick(tick())
        checks = set(never.run_requests[0].asset_check_keys)
        assert checks  # never evaluated: every served mart's check is due

        worker = definitions.resolve_job_def("pipeline_worker")
        config = {"ops": {"pipeline_worker_op": {"config": {"minutes": 0.05}}}}
        assert worker.execute_in_process(instance=instance, run_config=config).success
        fresh = sensor.evaluate_tick(tick())
        assert not fresh.run_requests, fresh.skip_message

        with freeze_time(datetime.now(UTC) + timedelta(minutes=6)):
            past_five = sensor.evaluate_tick(tick())
        due = set(past_five.run_requests[0].asset_check_keys)
        assert {key.asset_key.path[-1] for key in checks - due} == DAILY_SERVED
        with freeze_time(datetime.now(UTC) + timedelta(minutes=11)):
            past_ten = sensor.evaluate_tick(tick())
        assert set(past_ten.run_requests[0].asset_check_keys) == checks


def test_a_worker_whose_run_was_failed_from_outside_stops_after_its_next_cycle(
    settings, tenant, second_tenant
):
    """The worker sensor fails a run whose heartbeat it does not find, and Dagster does not stop
    that run's process: the worker stops itself after the next cycle that sees its run failed,
    so it does not go on beside the next run's worker. Without that, this run would cycle for
    its 30 minutes and the test time out."""
    import dagster as dg

    from lakepulse.core.dagster_instance import ensure_instance
    from orchestration.definitions import build_definitions

    start = datetime.now(UTC) - timedelta(minutes=30)
    land_simulated(settings, 300, seed=60, start=start)
    ensure_instance(settings)
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        definitions = build_definitions(settings)

        def fail_the_run_once_it_cycles() -> None:
            deadline = time.monotonic() + 300
            while not cycle_log(settings) and time.monotonic() < deadline:
                time.sleep(0.5)
            (run,) = instance.get_runs(
                dg.RunsFilter(job_name="pipeline_worker", statuses=[dg.DagsterRunStatus.STARTED])
            )
            instance.report_run_failed(run, "the pipeline worker stopped beating")
            land_simulated(settings, 50, seed=61, start=start)  # a cycle with work to report

        sensor = threading.Thread(target=fail_the_run_once_it_cycles)
        sensor.start()
        worker = definitions.resolve_job_def("pipeline_worker")
        config = {"ops": {"pipeline_worker_op": {"config": {"minutes": 30}}}}
        result = worker.execute_in_process(
            instance=instance, run_config=config, raise_on_error=False
        )
        sensor.join()
        logs = instance.all_logs(result.run_id)
        said = [entry.user_message for entry in logs if entry.dagster_event is None]
        assert any("the worker stops after this cycle" in line for line in said), said
        # the op returned by itself (an op interrupted, by a timeout say, fails its step)
        ended = {entry.dagster_event.event_type for entry in logs if entry.dagster_event}
        assert dg.DagsterEventType.STEP_SUCCESS in ended, ended
    assert len(cycle_log(settings)) >= 2  # the catch-up, then the cycle that saw the failure
