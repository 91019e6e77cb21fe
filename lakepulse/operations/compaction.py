"""Compaction as one workflow (``lakepulse compact`` and the compaction asset)."""

from __future__ import annotations

from datetime import timedelta

from ingestion.maintenance import compact, vacuum
from ingestion.pipeline import loader_lock
from lakepulse.core.settings import Settings


def compact_and_vacuum(
    settings: Settings, retain: timedelta = timedelta(days=7)
) -> tuple[dict[str, dict], dict[str, int]]:
    """The scheduled upkeep: OPTIMIZE bronze's small files, then VACUUM versions older than
    ``retain``, under the loader lock so no load writes meanwhile."""
    with loader_lock(settings):
        return compact(settings), vacuum(settings, retain)
