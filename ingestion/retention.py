"""Retention of what the ingestion layer owns (bronze, the landing log, dlt's load records):
each kind is dropped when older than its policy (:class:`lakepulse.core.settings.RetentionPolicy`).
Plain functions returning what they removed; :func:`lakepulse.operations.retention.apply_retention`
runs them all.

Every function here writes, so callers hold the loader lock (the Dagster jobs also carry the
pipeline tag, which keeps them from overlapping a minute run)."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, date, datetime, timedelta

from deltalake import DeltaTable

from ingestion.maintenance import delete_loaded_landing_files
from lakepulse.core.settings import Settings


def cutoff(days: int) -> datetime:
    """The instant before which data older than ``days`` goes."""
    return datetime.now(UTC) - timedelta(days=days)


def expire_bronze_events(settings: Settings, days: int) -> dict:
    """Drop whole event-date partitions older than ``days`` (a metadata-only delete)."""
    path = settings.bronze_events_path
    if not (path / "_delta_log").exists():
        return {"rows_removed": 0, "before": None}
    before: date = cutoff(days).date()
    metrics = DeltaTable(str(path)).delete(f"event_date < '{before.isoformat()}'")
    return {"rows_removed": int(metrics.get("num_deleted_rows", 0)), "before": before.isoformat()}


def expire_rejected_events(settings: Settings, days: int) -> dict:
    path = settings.bronze_rejected_path
    if not (path / "_delta_log").exists():
        return {"rows_removed": 0, "before": None}
    before = cutoff(days)
    micros = int(before.timestamp() * 1_000_000)
    metrics = DeltaTable(str(path)).delete(f"received_at < {micros}")
    return {"rows_removed": int(metrics.get("num_deleted_rows", 0)), "before": before.isoformat()}


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
