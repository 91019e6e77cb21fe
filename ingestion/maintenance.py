"""Bronze upkeep: compaction, VACUUM, landing-file cleanup and replay.

Plain functions returning what they did, so the CLI, Dagster assets (with the result as
materialization metadata) and tests share one implementation.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from deltalake import DeltaTable

from ingestion.landing import LandingLog, pending_files, read_cursors
from lakepulse.core.settings import BRONZE_TABLES, Settings


def _table(settings: Settings, name: str) -> DeltaTable | None:
    path = settings.lake_dir / "raw" / name
    return DeltaTable(str(path)) if (path / "_delta_log").exists() else None


def compact(settings: Settings, target_size: int = 128 * 1024 * 1024) -> dict[str, dict]:
    """OPTIMIZE: rewrite each partition's small files into few large ones. Readers keep
    working (new files are committed atomically; old ones stay until VACUUM)."""
    results = {}
    for name in BRONZE_TABLES:
        table = _table(settings, name)
        if table is not None:
            metrics = table.optimize.compact(target_size=target_size)
            results[name] = {
                "files_removed": metrics.get("numFilesRemoved", 0),
                "files_added": metrics.get("numFilesAdded", 0),
            }
    return results


def vacuum(settings: Settings, retain: timedelta = timedelta(days=7)) -> dict[str, int]:
    """Delete data files no longer referenced by a table version younger than ``retain``.
    Time travel before that horizon is gone; erasure relies on this to remove old copies."""
    results = {}
    for name in BRONZE_TABLES:
        table = _table(settings, name)
        if table is not None:
            removed = table.vacuum(
                retention_hours=int(retain.total_seconds() // 3600),
                dry_run=False,
                enforce_retention_duration=False,
            )
            results[name] = len(removed)
    return results


@dataclass
class LandingCleanup:
    deleted: list[str] = field(default_factory=list)
    kept_unloaded: int = 0
    kept_recent: int = 0
    skipped_reason: str | None = None


def delete_loaded_landing_files(settings: Settings, retain: timedelta) -> LandingCleanup:
    """Delete landing files that are both loaded into bronze and older than ``retain``.

    "Loaded" is read from the loader's cursors, which dlt commits locally at extract time; so
    nothing is deleted while dlt still has a load package pending (the files may be needed to
    redo it)."""
    from ingestion.pipeline import bronze_pipeline

    result = LandingCleanup()
    if bronze_pipeline(settings).has_pending_data:
        result.skipped_reason = "a load is pending; run `lakepulse ingest` first"
        return result
    log = LandingLog(settings.landing_dir)
    horizon = (time.time() - retain.total_seconds()) * 1_000_000
    for kind, resource in (("events", "events"), ("rejected", "events_rejected")):
        cursors = read_cursors(settings.loader_state_path, resource)
        by_partition: dict[str, list] = {}
        for f in log.files(kind):
            by_partition.setdefault(f.partition, []).append(f)
        for partition, files in by_partition.items():
            cursor = cursors.get(partition)
            unloaded = (
                {f.name for f in pending_files(files, cursor)}
                if cursor
                else {f.name for f in files}
            )
            for f in files:
                if f.name in unloaded:
                    result.kept_unloaded += 1
                elif f.published_micros >= horizon:
                    result.kept_recent += 1
                else:
                    f.path.unlink()
                    result.deleted.append(f"{partition}/{f.name}")
    return result


def replay_bronze(settings: Settings, target_lake: Path) -> Path:
    """Rebuild bronze from the landing archive into a fresh lake directory (same loader, fresh
    cursors), e.g. to verify bronze or to rebuild it after a bad change."""
    from ingestion.pipeline import run_ingest

    with tempfile.TemporaryDirectory() as scratch:
        target = Settings.from_env({"LAKEPULSE_HOME": scratch})
        target.ensure_dirs()
        shutil.rmtree(target.landing_dir)
        target.landing_dir.symlink_to(settings.landing_dir)
        run_ingest(target)
        target_lake.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(target.lake_dir), target_lake)
    return target_lake
