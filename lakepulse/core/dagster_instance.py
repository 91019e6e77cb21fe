"""The local Dagster instance under ``$DAGSTER_HOME``: telemetry off, pipeline runs serialised."""

from __future__ import annotations

import os

import yaml

from lakepulse.core.settings import Settings

PIPELINE_TAG = "lakepulse/pipeline"
"""Runs carrying this tag never overlap (a run-queue limit here, and the sensor skips)."""


WORKER_TAG = "lakepulse/worker"
"""The pipeline worker's runs: never two at once."""

MARKER = "# Written by lakepulse from the environment; remove this line to keep your edits.\n"
PG_URL_VAR = "LAKEPULSE_DAGSTER_PG_URL"


def dagster_yaml(settings: Settings, env: dict[str, str] | None = None) -> dict:
    """SQLite storage under ``$DAGSTER_HOME`` by default; PostgreSQL run, event-log and
    schedule storage when ``LAKEPULSE_DAGSTER_PG_URL`` is set (the URL itself stays in the
    environment, not in the file)."""
    env = os.environ if env is None else env
    storage = {"storage": {"postgres": {"postgres_url": {"env": PG_URL_VAR}}}}
    return {
        **(storage if env.get(PG_URL_VAR) else {}),
        "telemetry": {"enabled": False},
        "concurrency": {
            "runs": {
                "max_concurrent_runs": 4,
                # The minute pipeline never overlaps itself, whatever launches it.
                "tag_concurrency_limits": [
                    {"key": PIPELINE_TAG, "limit": 1},
                    {"key": WORKER_TAG, "limit": 1},
                ],
            }
        },
        # The next minute run waits in the queue behind the current one: look every second
        # (default 5) so it starts as soon as the other ends.
        "run_queue": {"dequeue_interval_seconds": 1},
        "run_monitoring": {"enabled": True, "poll_interval_seconds": 30},
    }


def sqlalchemy_pg_url(url: str) -> str:
    """dagster-postgres speaks psycopg2, but SQLAlchemy 2.1 maps a bare ``postgresql://`` to
    psycopg 3, whose server-side parameters break Dagster's ``NOTIFY``: name the driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def ensure_instance(settings: Settings) -> None:
    """Write ``dagster.yaml`` from the environment, unless the operator owns the file (it
    lacks our first line). A PostgreSQL URL in the environment is given its driver here, for
    this process and the Dagster processes it starts."""
    if os.environ.get(PG_URL_VAR):
        os.environ[PG_URL_VAR] = sqlalchemy_pg_url(os.environ[PG_URL_VAR])
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    path = settings.dagster_home / "dagster.yaml"
    if not path.exists() or path.read_text().startswith(MARKER):
        path.write_text(MARKER + yaml.safe_dump(dagster_yaml(settings), sort_keys=False))
