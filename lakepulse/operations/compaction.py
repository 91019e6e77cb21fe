"""Compaction as one workflow (``lakepulse compact``, the compaction asset, and the pipeline
worker between its cycles)."""

from __future__ import annotations

from datetime import timedelta

from ingestion.maintenance import compact, vacuum
from ingestion.pipeline import loader_lock
from lakepulse.core.settings import Settings

COMPACTED_FILE_BYTES = 128 * 2**20
"""The files ``lakepulse compact`` and the hourly job write: few and large, for readers."""


def compact_and_vacuum(
    settings: Settings,
    retain: timedelta = timedelta(days=7),
    target_size: int = COMPACTED_FILE_BYTES,
) -> tuple[dict[str, dict], dict[str, int]]:
    """The scheduled upkeep: OPTIMIZE bronze's small files (into files of up to
    ``target_size`` bytes), then VACUUM versions older than ``retain``, under the loader lock so
    no load writes meanwhile.

    Every file smaller than ``target_size`` is rewritten, so the target bounds the work too: the
    pipeline worker, which compacts between two cycles, passes a small one (it rewrites what
    landed since its last compaction, not the history)."""
    with loader_lock(settings):
        return compact(settings, target_size=target_size), vacuum(settings, retain)
