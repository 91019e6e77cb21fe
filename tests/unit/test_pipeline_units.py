"""Pure pieces of the loader: batch dedupe and the per-partition cursor."""

import pyarrow as pa

from ingestion.landing import LOOKBACK_MICROS, LandingFile, advance_cursor, pending_files
from ingestion.pipeline import dedupe_last


def lf(micros: int, token: str = "aa") -> LandingFile:
    name = f"{micros:016d}-{token}.events.ndjson"
    return LandingFile("p=00", name, None)


def test_dedupe_keeps_the_last_copy_of_each_key():
    table = pa.table({"t": ["a", "a", "b", "a"], "m": ["1", "2", "1", "1"], "v": [1, 2, 3, 4]})
    out = dedupe_last(table, ("t", "m"))
    assert sorted(out.to_pylist(), key=lambda r: (r["t"], r["m"])) == [
        {"t": "a", "m": "1", "v": 4},
        {"t": "a", "m": "2", "v": 2},
        {"t": "b", "m": "1", "v": 3},
    ]


def test_cursor_skips_loaded_files_and_catches_late_published_ones():
    loaded = [lf(1_000_000), lf(2_000_000)]
    cursor = advance_cursor({}, loaded)
    late = lf(1_500_000, "bb")  # published after the load, with an earlier name
    newer = lf(3_000_000)
    assert pending_files([*loaded, late, newer], cursor) == [late, newer]


def test_cursor_forgets_names_older_than_the_lookback():
    old = lf(1_000_000)
    cursor = advance_cursor({}, [old])
    cursor = advance_cursor(cursor, [lf(1_000_000 + LOOKBACK_MICROS + 5)])
    assert old.name not in cursor["recent"]
    assert pending_files([old], cursor) == []


def test_the_worker_paces_its_cycles(monkeypatch, tmp_path):
    """A cycle that built starts the next one a period after it began (none when it took
    longer), a failed one backs off, an idle one polls; the period comes from the
    environment."""
    from lakepulse.core.settings import Settings
    from lakepulse.operations import worker as worker_module
    from lakepulse.operations.worker import CycleReport, PipelineWorker

    monkeypatch.setenv(worker_module.CYCLE_EVERY_S_ENV, "6")
    worker = PipelineWorker(Settings.from_env({"LAKEPULSE_HOME": str(tmp_path)}))
    built = CycleReport(0.0, "a", tiers=["live"])
    assert worker.pause_after(built, took_s=2.5) == 3.5
    assert worker.pause_after(built, took_s=9.0) == 0.0
    failed = CycleReport(0.0, "a", error="boom")
    assert worker.pause_after(failed, took_s=1.0) == worker_module.ERROR_BACKOFF_S
    assert worker.pause_after(CycleReport(0.0, "a"), took_s=0.1) == worker_module.IDLE_POLL_S
    monkeypatch.delenv(worker_module.CYCLE_EVERY_S_ENV)
    default = PipelineWorker(Settings.from_env({"LAKEPULSE_HOME": str(tmp_path)}))
    assert default.pause_after(built, took_s=1.0) == worker_module.CYCLE_EVERY_S - 1.0


def test_the_worker_checkpoints_a_long_log_when_the_cycle_leaves_room(monkeypatch, tmp_path):
    """A write-ahead log past the threshold is checkpointed after a cycle that left room before
    the next one, not after one that ran to its period's end (a checkpoint there would delay
    the next live cycle), unless the log has grown past the forced size; the seconds it took
    are the cycle's ``checkpoint`` stage."""
    import duckdb

    from lakepulse.core.settings import Settings
    from lakepulse.operations import worker as worker_module
    from lakepulse.operations.worker import CycleReport, PipelineWorker

    settings = Settings.from_env({"LAKEPULSE_HOME": str(tmp_path)})
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    wal = settings.warehouse_path.with_name(settings.warehouse_path.name + ".wal")
    warehouse = duckdb.connect(str(settings.warehouse_path))
    warehouse.execute("set checkpoint_threshold = '1GB'")
    worker = PipelineWorker(settings)
    monkeypatch.setattr(worker.dbt, "warehouse", lambda: warehouse)
    monkeypatch.setattr(worker_module, "CHECKPOINT_WAL_BYTES", 2**20)
    monkeypatch.setattr(worker_module, "CHECKPOINT_FORCED_WAL_BYTES", 16 * 2**20)

    def write(batches: int, table: str) -> int:
        """Rows in batches under a row group, which DuckDB logs (a larger one goes straight
        to the database file)."""
        warehouse.execute(f"create table {table} (n bigint, h varchar)")
        for _ in range(batches):
            warehouse.execute(
                f"insert into {table} select range, md5(range::text) from range(100000)"
            )
        return wal.stat().st_size

    try:
        logged = write(1, "a")
        assert 2**20 <= logged < 16 * 2**20
        worker.report = CycleReport(0.0, "a", tiers=["session"])
        worker._checkpoint_if_due(slack_s=worker_module.CHECKPOINT_SLACK_S - 0.5)
        assert wal.stat().st_size == logged and "checkpoint" not in worker.report.stages

        worker.report = CycleReport(0.0, "b", tiers=["live"])
        worker._checkpoint_if_due(slack_s=worker_module.CHECKPOINT_SLACK_S)
        assert not wal.exists() or wal.stat().st_size < 2**20
        assert worker.report.stages["checkpoint"] > 0

        assert write(6, "b") >= 16 * 2**20
        worker.report = CycleReport(0.0, "c", tiers=["session"])
        worker._checkpoint_if_due(slack_s=0.0)
        assert not wal.exists() or wal.stat().st_size < 2**20
        assert "checkpoint" in worker.report.stages
    finally:
        warehouse.close()
