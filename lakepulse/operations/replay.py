"""Replay as one workflow (``lakepulse replay`` and the Dagster replay job's config)."""

from __future__ import annotations

from lakepulse.core.settings import Settings
from lakepulse.operations.rebuild import rebuild


def replay(settings: Settings, capture: bool = False) -> None:
    """Rebuild every mart from bronze (a dbt full refresh: incremental models start over,
    the experiment snapshot history is kept), then the replica and PostgreSQL. Results equal
    the incremental ones; triggers already fired are not fired again."""
    rebuild(settings, full_refresh=True, capture=capture)
