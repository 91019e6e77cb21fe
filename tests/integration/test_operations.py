"""Operations in Dagster, in process against the real definitions: retention with metadata,
compaction, the erasure job, replay equal to the minute-maintained marts, blocking mart checks
and freshness."""

import dataclasses
import datetime as dt
import time
import warnings

import dagster as dg
import pytest
from dagster import _time
from dagster._core.utils import make_new_run_id
from deltalake import DeltaTable

from ingestion.landing import LandingLog
from ingestion.tenants import TenantRegistry
from lakepulse.core.settings import DBT_PROJECT_DIR
from lakepulse.demo.simulator import Faults
from orchestration.checks import build_freshness_checks
from orchestration.definitions import build_definitions
from tests.conftest import SIM_CLOCK, land_simulated
from tests.served import MARTS

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC)
OLD = NOW - dt.timedelta(days=40)
# What a replay may change: it appends an experiment snapshot (so the history and the latest
# snapshot's time and count move); alerts are written by the sensor, not rebuilt from bronze.
NOT_REBUILT = {"fct_experiment_snapshots", "mart_anomaly_alerts"}
FED_BY_FIRINGS = {"fct_trigger_firings", "fct_trigger_deliveries", "mart_trigger_impact"}
"""Marts over the firings table, which the fire step writes after each build: they trail it by
one build, so a replay shows what the minute run's next build would; checked against the table."""
SNAPSHOT_COLUMNS = {"mart_experiment_results": ["snapshot_at", "snapshots"]}


def materializations(result, key: list[str]) -> dict:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(key)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def mart_rows(workspace, mart: str) -> list[tuple]:
    drop = SNAPSHOT_COLUMNS.get(mart)
    columns = f"* exclude ({', '.join(drop)})" if drop else "*"
    return sorted(workspace.sql(f"select {columns} from marts.{mart}"), key=repr)


@pytest.fixture
def ops(settings, workspace):
    registry = TenantRegistry(settings.tenants_file)
    registry.add("acme")
    registry.add("globex")
    # 40-day-old traffic and today's, received as it happened, plus old and new rejections.
    for start, seed in ((OLD, 3), (SIM_CLOCK, 4)):
        land_simulated(
            settings,
            None,
            seed=seed,
            per_file=500,
            visits_per_second=2,
            start=start,
            until=start + dt.timedelta(minutes=20),
            faults=Faults(),
            count=False,
        )
    log = LandingLog(settings.landing_dir)
    for received, name in ((OLD, "old"), (NOW, "new")):
        log.write(
            "acme",
            "rejected",
            [
                {
                    "tenant_id": "acme",
                    "rejection_id": f"r-{name}",
                    "message_id": None,
                    "received_at": int(received.timestamp() * 1_000_000),
                    "reason": "missing event",
                    "payload": "{}",
                }
            ],
        )
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        assert (
            defs.resolve_job_def("ingest_and_build").execute_in_process(instance=instance).success
        )
        yield defs, instance


def test_retention_compaction_erasure_and_replay(settings, workspace, ops, monkeypatch):
    defs, instance = ops
    # The minute's dbt build re-read only what changed since this home's parse (a full parse
    # costs seconds of every minute) and kept its artifacts here, not in a new folder per run.
    dbt_log = (settings.dbt_target_dir / "dbt.log").read_text()
    assert "Partial parsing enabled" in dbt_log
    assert "Unable to do partial parsing" not in dbt_log
    assert (settings.dbt_target_dir / "run_results.json").exists()
    assert not list((DBT_PROJECT_DIR / "target").glob("dbt_models-*"))

    monkeypatch.setenv("LAKEPULSE_RETENTION_BRONZE_EVENTS_DAYS", "30")
    old_rows = workspace.sql(
        f"select count(*) from raw.events where event_date < '{(NOW - dt.timedelta(days=30)).date()}'"
    )[0][0]
    total = workspace.sql("select count(*) from raw.events")[0][0]
    assert 0 < old_rows < total

    # Replay: every mart rebuilt from bronze with a full refresh equals what the minute run built.
    before = {
        mart: mart_rows(workspace, mart)
        for mart in MARTS
        if mart not in NOT_REBUILT | FED_BY_FIRINGS
    }
    replay = defs.resolve_job_def("replay_marts").execute_in_process(instance=instance)
    assert replay.success
    for mart, rows in before.items():
        assert mart_rows(workspace, mart) == rows, mart
    fired = DeltaTable(str(settings.trigger_firings_path)).to_pyarrow_table()
    assert fired.num_rows > 0  # the simulated traffic fires triggers
    replayed = workspace.sql("select firing_id from marts.fct_trigger_firings order by 1")
    assert replayed == sorted((f,) for f in fired.column("firing_id").to_pylist())
    assert workspace.sql("select max(snapshots) from marts.mart_experiment_results")[0][0] == 2

    # Retention (policy 30 days for bronze): the 40-day-old day goes, metadata says how much.
    retention = defs.resolve_job_def("retention").execute_in_process(instance=instance)
    meta = materializations(retention, ["maintenance", "retention"])
    assert meta["bronze_events"]["rows_removed"] == old_rows
    assert meta["rejected_events"]["rows_removed"] == 1
    assert workspace.sql("select count(*) from raw.events")[0][0] == total - old_rows
    assert workspace.sql("select count(*) from raw.events_rejected")[0][0] == 1

    # The marts still hold the dropped events (incremental models keep what they were built
    # from) until the rebuild retention asks for: a run of the asset graph, requested by the
    # retention sensor, whose blocking mart checks run between the build and the publish.
    cutoff = (NOW - dt.timedelta(days=30)).date()
    old_sessions = f"select count(*) from marts.fct_sessions where session_date < '{cutoff}'"
    assert meta["rebuild_needed"] is True
    assert workspace.sql(old_sessions)[0][0] > 0
    sensor = defs.get_sensor_def("retention_rebuild_sensor")
    with dg.build_sensor_context(instance=instance, definitions=defs) as context:
        [request] = sensor.evaluate_tick(context).run_requests
    assert sensor.job_name == "replay_marts"
    rebuilt = defs.resolve_job_def(sensor.job_name).execute_in_process(
        instance=instance, tags=request.tags
    )
    assert rebuilt.success
    assert workspace.sql(old_sessions)[0][0] == 0
    checked = {e.check_name for e in rebuilt.get_asset_check_evaluations()}
    assert {"mart_funnel_conversion_quality", "mart_cohort_retention_quality"} <= checked

    # Compaction: the loads' small files (one per load and day) become fewer, larger ones.
    land_simulated(settings, 3_000, seed=5, faults=Faults(), count=False)
    workspace.ingest()
    files_before = len(DeltaTable(str(settings.bronze_events_path)).file_uris())
    compaction = defs.resolve_job_def("compaction").execute_in_process(instance=instance)
    meta = materializations(compaction, ["maintenance", "compaction"])
    assert meta["compacted"]["events"]["files_removed"] > 0
    assert len(DeltaTable(str(settings.bronze_events_path)).file_uris()) < files_before

    # Erasure from the Launchpad: same code as the CLI.
    (user_id,) = workspace.sql(
        "select user_id from raw.events where tenant_id = 'acme' and user_id is not null limit 1"
    )[0]
    erase = defs.resolve_job_def("erase_user").execute_in_process(
        instance=instance,
        run_config={
            "ops": {"erase_user_op": {"config": {"tenant_id": "acme", "user_id": user_id}}}
        },
    )
    assert erase.success
    assert workspace.sql(f"select count(*) from raw.events where user_id = '{user_id}'")[0][0] == 0
    assert (
        workspace.sql(f"select count(*) from marts.dim_users where user_key = '{user_id}'")[0][0]
        == 0
    )


def test_freshness_check_shows_a_mart_stale_once_its_tiers_bound_has_passed(monkeypatch):
    """Each mart is judged by its own bound: a live mart five minutes on, a daily one (built
    every few minutes, promised within ten) only past ten."""
    five_minutes = {"mart_event_volume", "fct_sessions"}
    ten_minutes = {"mart_cohort_retention", "mart_campaign_kpis"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checks = build_freshness_checks(
            {mart: 300.0 for mart in five_minutes} | {mart: 600.0 for mart in ten_minutes}
        )
    job = dg.define_asset_job("freshness", selection=dg.AssetSelection.all_asset_checks())
    marts = five_minutes | ten_minutes
    defs = dg.Definitions(
        assets=[dg.AssetSpec(mart) for mart in marts], asset_checks=checks, jobs=[job]
    )

    def stale_at(minutes_on: float) -> set[str]:
        later = time.time() + minutes_on * 60
        monkeypatch.setattr(_time, "_mockable_get_current_timestamp", lambda: later)
        monkeypatch.setattr(
            _time,
            "_mockable_get_current_datetime",
            lambda: dt.datetime.fromtimestamp(later, dt.UTC),
        )
        result = defs.resolve_job_def("freshness").execute_in_process(instance=instance)
        evaluations = result.get_asset_check_evaluations()
        assert {e.asset_key.path[-1] for e in evaluations} == marts
        stale = [e for e in evaluations if not e.passed]
        assert all(e.severity == dg.AssetCheckSeverity.WARN for e in stale)
        return {e.asset_key.path[-1] for e in stale}

    with dg.instance_for_test() as instance:
        for mart in marts:
            instance.report_runless_asset_event(dg.AssetMaterialization(mart))
        assert stale_at(0) == set()
        assert stale_at(6) == five_minutes
        assert stale_at(11) == marts


def test_sensor_queues_one_run_behind_a_running_one(settings, workspace):
    """Runs never overlap, but new files do not wait a whole tick for a run that has already
    loaded: behind a STARTED run one run is queued; while a run has not begun loading (queued,
    starting) the sensor skips, since that run will load the new files."""
    land_simulated(settings, events=50)
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("landing_log_sensor")
    job = defs.resolve_job_def("ingest_and_build")
    with dg.instance_for_test() as instance:

        def tick() -> dg.SensorResult:
            return sensor.evaluate_tick(
                dg.build_sensor_context(instance=instance, definitions=defs)
            )

        def add_run(status: dg.DagsterRunStatus) -> str:
            run = dg.DagsterRun(job_name=job.name, run_id=make_new_run_id(), status=status)
            instance.add_run(run)
            return run.run_id

        waiting_run = add_run(dg.DagsterRunStatus.STARTING)
        waiting = tick()
        assert not waiting.run_requests
        assert "has not started loading" in waiting.skip_message

        instance.delete_run(waiting_run)
        add_run(dg.DagsterRunStatus.STARTED)
        queued = tick()
        assert len(queued.run_requests) == 1, queued.skip_message
        # The queued run carries the pipeline tag, whose limit of one keeps it behind the other.
        assert job.tags.get("lakepulse/pipeline") == "minute"


def test_the_minute_run_carries_the_marts_tests_and_blocking_suites_but_no_freshness_check(
    settings, workspace
):
    """What the minute's run plans and records: every asset check of a dbt test is a test of a
    mart (the upstream tests run inside dbt without a check each), the blocking suites are
    there, the freshness checks are left to their own sensor, and the publish and the suites
    gating it go before the trigger firing."""
    land_simulated(settings, events=50)
    settings = dataclasses.replace(settings, pg_url="postgresql://unused@/postgres")
    defs = build_definitions(settings)
    job = defs.resolve_job_def("ingest_and_build")
    graph = defs.get_repository_def().asset_graph
    checks = job.asset_layer.asset_graph.asset_check_keys
    names = {check.name for check in checks}
    dbt_tests = {
        c for c in checks if c.name.startswith(("not_null", "unique", "accepted", "lakepulse_"))
    }
    assert dbt_tests, "the marts' dbt tests are asset checks"
    assert {graph.get(c.asset_key).group_name for c in dbt_tests} == {"marts"}
    assert {"bronze_events_quality", "mart_funnel_conversion_quality"} <= names
    assert not any("freshness" in name for name in names)
    priority = {n.name: int(n.tags.get("dagster/priority", 0)) for n in job.graph.node_defs}
    assert priority["postgres__marts"] > priority["fire_triggers"]
