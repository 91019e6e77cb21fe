"""The local Dagster instance under ``$DAGSTER_HOME``: telemetry off, pipeline runs serialised."""

from __future__ import annotations

import yaml

from lakepulse.config import Settings

PIPELINE_TAG = "lakepulse/pipeline"
"""Runs carrying this tag never overlap (a run-queue limit here, and the sensor skips)."""


def dagster_yaml(settings: Settings) -> dict:
    """SQLite storage by default (Dagster's own default when no storage is configured)."""
    return {
        "telemetry": {"enabled": False},
        "concurrency": {
            "runs": {
                "max_concurrent_runs": 4,
                # The minute pipeline never overlaps itself, whatever launches it.
                "tag_concurrency_limits": [{"key": PIPELINE_TAG, "limit": 1}],
            }
        },
        "run_monitoring": {"enabled": True, "poll_interval_seconds": 30},
    }


def ensure_instance(settings: Settings) -> None:
    """Write ``dagster.yaml`` if the operator has not provided one."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    path = settings.dagster_home / "dagster.yaml"
    if not path.exists():
        path.write_text(
            "# Written by lakepulse; edit freely, it is not overwritten.\n"
            + yaml.safe_dump(dagster_yaml(settings), sort_keys=False)
        )
