"""Running dbt outside Dagster (``lakepulse build``), with the same project and profile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lakepulse.config import DBT_PROJECT_DIR, Settings


def dbt_executable() -> str:
    return str(Path(sys.executable).with_name("dbt"))


def dbt_command(settings: Settings, *args: str) -> list[str]:
    return [
        dbt_executable(),
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(settings.dbt_target_dir),
    ]


def run_dbt(settings: Settings, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run a dbt command against this data directory; raises on failure. After a build the
    read replica for ad-hoc queries is refreshed."""
    settings.ensure_dirs()
    result = subprocess.run(
        dbt_command(settings, *args),
        env=settings.process_env(),
        cwd=DBT_PROJECT_DIR,
        check=True,
        text=True,
        capture_output=capture,
    )
    if args and args[0] in {"build", "run", "seed"}:
        from lakepulse.query import refresh_replica

        refresh_replica(settings)
    return result
