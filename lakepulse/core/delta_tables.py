"""What keeps a Delta table that a long-lived process scans every few seconds small to read:
its table properties, set when lakepulse creates the table or, for a table made before, once.

DuckDB's Delta extension (the ``duckdb-extension-delta`` wheel, 1.5.5) keeps what each
``delta_scan`` read of the table's log for the life of the process (duckdb/duckdb-delta#279,
fixed upstream after that wheel): every commit since the last checkpoint and every file's
statistics. The pipeline worker scans the bronze and trigger tables a dozen times a cycle, for
the half hour of its run; with Delta's defaults (a checkpoint every 100 commits, statistics on
the first 32 columns) a scan of a trigger table kept ~1.2 MB, and the worker grew by ~20 MB a
cycle. Two properties bound what a scan reads, and so what it keeps:

- ``delta.checkpointInterval``: a checkpoint every :data:`CHECKPOINT_INTERVAL` commits (written
  by the commit that reaches it), so a scan reads at most that many commits after it;
- ``delta.dataSkippingStatsColumns``: statistics only on the columns that readers filter by
  (a load's ``loaded_at``, the loader's ``received_at`` window, ...). Files written before keep
  theirs until compaction rewrites them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

CHECKPOINT_INTERVAL = 10
"""Commits between two checkpoints of a table lakepulse scans every cycle (Delta's default:
100). A checkpoint of the bronze events table holds one row per file: milliseconds."""

_configured: set[str] = set()
"""Tables whose properties this process has found set (they stay set: checked once)."""


def upkeep_properties(stats_columns: Sequence[str]) -> dict[str, str]:
    """The table properties of a table scanned every cycle, whose readers filter by
    ``stats_columns``."""
    return {
        "delta.checkpointInterval": str(CHECKPOINT_INTERVAL),
        "delta.dataSkippingStatsColumns": ",".join(stats_columns),
    }


def ensure_upkeep_properties(path: Path, stats_columns: Sequence[str]) -> bool:
    """Set :func:`upkeep_properties` on the Delta table at ``path`` unless they are set (one
    commit, once per table; then once per process, to find them set). False when there is no
    table at ``path`` yet. The caller holds the lock that the table's writers take, so that
    no write is in flight when its metadata changes."""
    key = str(path)
    if key in _configured:
        return True
    if not (path / "_delta_log").exists():
        return False
    from deltalake import DeltaTable

    table = DeltaTable(key)
    wanted = upkeep_properties(stats_columns)
    current = table.metadata().configuration
    if any(current.get(name) != value for name, value in wanted.items()):
        table.alter.set_table_properties(wanted)
    _configured.add(key)
    return True
