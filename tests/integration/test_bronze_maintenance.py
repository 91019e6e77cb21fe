"""Bronze beyond the happy path: schema evolution, type conflicts, late events, compaction,
VACUUM, landing cleanup and replay from the landing archive."""

import os
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from deltalake import DeltaTable

from ingestion.contract import normalize
from ingestion.landing import LandingLog
from ingestion.maintenance import compact, delete_loaded_landing_files, replay_bronze, vacuum
from tests.conftest import SIM_CLOCK, land_simulated

pytestmark = pytest.mark.integration


def land(settings, *messages, received=SIM_CLOCK):
    rows = [normalize(m, tenant_id="acme", secret=b"s", received_at=received) for m in messages]
    return LandingLog(settings.landing_dir).write("acme", "events", rows)


def land_with_a_type_conflict(settings, good_id: str, conflicting_id: str) -> None:
    """One landing file: a good event, and one whose revenue does not fit bronze's type (as
    an older writer might have written it)."""
    good = normalize(
        {"type": "track", "event": "A", "anonymousId": "a", "messageId": good_id},
        tenant_id="acme",
        secret=b"s",
        received_at=SIM_CLOCK,
    )
    bad = dict(good, message_id=conflicting_id, revenue="twelve")
    LandingLog(settings.landing_dir).write("acme", "events", [good, bad])


def sorted_rows(table):
    table = table.drop_columns([c for c in ("loaded_at",) if c in table.column_names])
    return table.sort_by([("tenant_id", "ascending"), ("message_id", "ascending")]).to_pylist()


def test_new_properties_and_context_fields_flow_through(settings, workspace):
    land(settings, {"type": "track", "event": "A", "anonymousId": "a", "messageId": "m1"})
    workspace.ingest()
    land(
        settings,
        {
            "type": "track",
            "event": "B",
            "anonymousId": "a",
            "messageId": "m2",
            "properties": {"coupon": "XMAS", "nested": {"depth": 2}},
            "context": {"app": {"build": "42"}, "ip": "1.2.3.4", "timezone": "Europe/Berlin"},
        },
    )
    workspace.ingest()
    rows = {r["message_id"]: r for r in workspace.bronze().to_pylist()}
    assert orjson.loads(rows["m2"]["properties"]) == {"coupon": "XMAS", "nested": {"depth": 2}}
    assert orjson.loads(rows["m2"]["context"]) == {
        "app": {"build": "42"},
        "timezone": "Europe/Berlin",
    }
    assert rows["m1"]["context"] is None


def test_a_type_conflict_is_quarantined_not_a_crash(settings, workspace):
    land_with_a_type_conflict(settings, "ok", "conflict")
    workspace.ingest()
    workspace.ingest()  # the quarantine file written by the first pass is loaded
    workspace.ingest()  # and nothing is quarantined twice
    assert workspace.bronze()["message_id"].to_pylist() == ["ok"]
    rejected = workspace.bronze("events_rejected").to_pylist()
    assert [r["message_id"] for r in rejected] == ["conflict"]
    assert rejected[0]["reason"].startswith("type conflict in landing file")


def test_late_and_out_of_order_events_land_in_their_event_time_partition(settings, workspace):
    now = datetime(2026, 11, 22, 0, 5, tzinfo=UTC)
    three_days_ago = (now - timedelta(days=3)).isoformat()
    land(
        settings,
        {
            "type": "track",
            "event": "Late",
            "anonymousId": "a",
            "messageId": "late",
            "timestamp": three_days_ago,
        },
        {
            "type": "track",
            "event": "Now",
            "anonymousId": "a",
            "messageId": "now",
            "timestamp": now.isoformat(),
        },
        {
            "type": "track",
            "event": "Before midnight",
            "anonymousId": "a",
            "messageId": "prev",
            "timestamp": "2026-11-21T23:59:59.500000+00:00",
        },
        received=now,
    )
    workspace.ingest()
    dates = {r["message_id"]: str(r["event_date"]) for r in workspace.bronze().to_pylist()}
    assert dates == {"late": "2026-11-19", "now": "2026-11-22", "prev": "2026-11-21"}
    partitions = {
        p.name for p in settings.bronze_events_path.iterdir() if p.name.startswith("event_date=")
    }
    assert partitions == {"event_date=2026-11-19", "event_date=2026-11-21", "event_date=2026-11-22"}


def test_compaction_and_vacuum_keep_rows_and_drop_old_files(settings, workspace):
    land_simulated(settings, 3_000, per_file=100)
    # Several loads, each adding small files.
    files = sorted(LandingLog(settings.landing_dir).files("events"))
    for f in files[: len(files) // 2]:
        os.rename(f.path, f.path.with_name("." + f.name))  # hide half, load in two goes
    workspace.ingest()
    for f in files[: len(files) // 2]:
        os.rename(f.path.with_name("." + f.name), f.path)
    workspace.ingest()
    before = sorted_rows(workspace.bronze())
    files_before = len(DeltaTable(str(settings.bronze_events_path)).file_uris())

    result = compact(settings)
    assert result["events"]["files_removed"] >= files_before > result["events"]["files_added"]
    assert sorted_rows(workspace.bronze()) == before
    on_disk = len(list(settings.bronze_events_path.rglob("*.parquet")))
    removed = vacuum(settings, retain=timedelta(0))
    assert (
        removed["events"]
        == on_disk - len(DeltaTable(str(settings.bronze_events_path)).file_uris())
        > 0
    )
    assert sorted_rows(workspace.bronze()) == before


def test_landing_files_are_deleted_only_when_loaded_and_old(settings, workspace):
    land_simulated(settings, 1_000, per_file=100)
    workspace.ingest()
    loaded = {f.name for f in LandingLog(settings.landing_dir).files()}
    time.sleep(0.01)
    land(settings, {"type": "track", "event": "New", "anonymousId": "a", "messageId": "unloaded"})

    kept = delete_loaded_landing_files(settings, retain=timedelta(days=1))
    assert kept.deleted == [] and kept.kept_recent == len(loaded) and kept.kept_unloaded == 1

    cleaned = delete_loaded_landing_files(settings, retain=timedelta(0))
    assert {d.split("/", 1)[1] for d in cleaned.deleted} == loaded
    remaining = [f.name for f in LandingLog(settings.landing_dir).files()]
    assert len(remaining) == 1 and cleaned.kept_unloaded == 1
    workspace.ingest()
    assert "unloaded" in workspace.bronze()["message_id"].to_pylist()


def test_replay_from_the_landing_archive_gives_the_same_rows(settings, workspace, tmp_path):
    land_simulated(settings, 4_000, per_file=200)
    workspace.ingest()
    land_simulated(settings, 1_000, per_file=200, seed=10)  # a later minute, with retries
    workspace.ingest()
    replayed = replay_bronze(settings, tmp_path / "replayed")
    original = sorted_rows(workspace.bronze())
    assert sorted_rows(DeltaTable(str(replayed / "raw" / "events")).to_pyarrow_table()) == original


def _stats_columns(table_path) -> set[str]:
    """The columns with statistics in the newest commit's added files."""
    log = sorted((table_path / "_delta_log").glob("*.json"))[-1]
    columns = set()
    for line in log.read_text().splitlines():
        add = orjson.loads(line).get("add")
        if add and add.get("stats"):
            columns |= set(orjson.loads(add["stats"]).get("minValues", {}))
    return columns


def test_bronze_tables_checkpoint_often_and_keep_statistics_only_where_readers_filter(
    settings, workspace
):
    """DuckDB's Delta extension keeps what each scan read of a table's log for the life of the
    process; the worker scans bronze every cycle, so bronze keeps that small: a checkpoint
    every ten commits, and statistics on the loader's and the increments' columns only."""
    from lakepulse.core.delta_tables import CHECKPOINT_INTERVAL

    land_with_a_type_conflict(settings, "m0", "bad")
    workspace.ingest()
    workspace.ingest()  # the quarantined row reaches events_rejected
    events = settings.lake_dir / "raw" / "events"
    for table in (events, settings.lake_dir / "raw" / "events_rejected"):
        configuration = DeltaTable(str(table)).metadata().configuration
        assert configuration["delta.dataSkippingStatsColumns"] == "received_at,loaded_at"
        assert configuration["delta.checkpointInterval"] == "10"
    for n in range(1, CHECKPOINT_INTERVAL + 1):
        land(settings, {"type": "track", "event": "A", "anonymousId": "a", "messageId": f"m{n}"})
        workspace.ingest()
    assert DeltaTable(str(events)).version() >= CHECKPOINT_INTERVAL
    assert list((events / "_delta_log").glob("*.checkpoint.parquet"))
    assert _stats_columns(events) == {"received_at", "loaded_at"}
    assert len(workspace.bronze()) == CHECKPOINT_INTERVAL + 1
