"""Retention: each kind of data is dropped when it is older than its policy
(:class:`lakepulse.config.RetentionPolicy`). Plain functions returning what they removed, so
the CLI, the Dagster assets (as materialization metadata) and the tests share them.

Every function here writes, so callers hold the loader lock (the Dagster jobs also carry the
pipeline tag, which keeps them from overlapping a minute run)."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, date, datetime, timedelta

from deltalake import DeltaTable

from ingestion.maintenance import delete_loaded_landing_files
from lakepulse.config import RetentionPolicy, Settings


def _cutoff(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def expire_bronze_events(settings: Settings, days: int) -> dict:
    """Drop whole event-date partitions older than ``days`` (a metadata-only delete)."""
    path = settings.bronze_events_path
    if not (path / "_delta_log").exists():
        return {"rows_removed": 0, "before": None}
    before: date = _cutoff(days).date()
    metrics = DeltaTable(str(path)).delete(f"event_date < '{before.isoformat()}'")
    return {"rows_removed": int(metrics.get("num_deleted_rows", 0)), "before": before.isoformat()}


def expire_rejected_events(settings: Settings, days: int) -> dict:
    path = settings.bronze_rejected_path
    if not (path / "_delta_log").exists():
        return {"rows_removed": 0, "before": None}
    cutoff = _cutoff(days)
    micros = int(cutoff.timestamp() * 1_000_000)
    metrics = DeltaTable(str(path)).delete(f"received_at < {micros}")
    return {"rows_removed": int(metrics.get("num_deleted_rows", 0)), "before": cutoff.isoformat()}


def expire_landing_files(settings: Settings, days: int) -> dict:
    """Landing files go only once they are in bronze (see delete_loaded_landing_files)."""
    result = delete_loaded_landing_files(settings, timedelta(days=days))
    return {
        "files_removed": len(result.deleted),
        "kept_not_yet_loaded": result.kept_unloaded,
        "kept_recent": result.kept_recent,
        "skipped": result.skipped_reason,
    }


def expire_loader_packages(settings: Settings, days: int) -> dict:
    """dlt's record of finished loads (one folder per load, data files already deleted)."""
    loaded = settings.loader_state_path.parent / "load" / "loaded"
    horizon = time.time() - days * 86400
    removed = 0
    if loaded.exists():
        for package in loaded.iterdir():
            if package.is_dir() and package.stat().st_mtime < horizon:
                shutil.rmtree(package)
                removed += 1
    return {"packages_removed": removed}


def expire_experiment_snapshots(settings: Settings, days: int) -> dict:
    """Old snapshots of fct_experiment_snapshots. The always-valid columns of the rows kept
    already fold in the dropped ones, so results stay valid."""
    import duckdb

    if not settings.warehouse_path.exists():
        return {"rows_removed": 0}
    conn = duckdb.connect(str(settings.warehouse_path))
    try:
        exists = conn.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'marts' and table_name = 'fct_experiment_snapshots'"
        ).fetchone()[0]
        if not exists:
            return {"rows_removed": 0}
        # Keep each series' latest snapshot whatever its age: it carries the running values.
        removed = conn.execute(
            "delete from marts.fct_experiment_snapshots s where snapshot_at < ? and snapshot_at < "
            "(select max(snapshot_at) from marts.fct_experiment_snapshots l where "
            "l.tenant_id = s.tenant_id and l.experiment_id = s.experiment_id "
            "and l.variation_id = s.variation_id and l.metric = s.metric)",
            [_cutoff(days)],
        ).fetchone()[0]
        return {"rows_removed": int(removed)}
    finally:
        conn.close()


def apply_retention(settings: Settings, policy: RetentionPolicy | None = None) -> dict[str, dict]:
    """Every policy at once (``lakepulse retention``)."""
    from ingestion.pipeline import loader_lock

    policy = policy or RetentionPolicy.from_env()
    with loader_lock(settings):
        return {
            "bronze_events": expire_bronze_events(settings, policy.bronze_events),
            "rejected_events": expire_rejected_events(settings, policy.rejected_events),
            "landing_files": expire_landing_files(settings, policy.landing_files),
            "loader_packages": expire_loader_packages(settings, policy.loader_packages),
            "experiment_snapshots": expire_experiment_snapshots(
                settings, policy.experiment_snapshots
            ),
        }
