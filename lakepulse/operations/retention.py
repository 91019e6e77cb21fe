"""Retention as one workflow (``lakepulse retention`` and the Dagster retention asset): every
policy at once, then a rebuild from bronze when events were dropped."""

from __future__ import annotations

from ingestion.pipeline import loader_lock
from ingestion.retention import (
    expire_bronze_events,
    expire_landing_files,
    expire_loader_packages,
    expire_rejected_events,
)
from lakepulse.core.settings import RetentionPolicy, Settings
from lakepulse.operations.rebuild import rebuild
from lakepulse.warehouse.snapshots import expire_experiment_snapshots


def apply_retention(settings: Settings, policy: RetentionPolicy | None = None) -> dict[str, dict]:
    """Every policy at once (``lakepulse retention``)."""
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


def rebuild_needed(removed: dict[str, dict]) -> bool:
    """Incremental models keep what they were built from, so bronze events dropped by
    retention would live on in the warehouse until a rebuild from bronze (a full refresh)."""
    return bool(removed.get("bronze_events", {}).get("rows_removed"))


def rebuild_after_retention(settings: Settings, removed: dict[str, dict]) -> bool:
    """The rebuild :func:`rebuild_needed` asks for, here and now (``lakepulse retention``;
    Dagster requests it as a run of the asset graph instead, so the blocking mart checks
    gate its publish). Returns whether it rebuilt."""
    if not rebuild_needed(removed):
        return False
    rebuild(settings, full_refresh=True, capture=True)
    return True
