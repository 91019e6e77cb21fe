"""Running dbt against one data directory, with the project's profile: the command line, the
pipeline's build arguments, and the seeds fingerprint. No side effects beyond dbt's own: what
happens around a build (alerts table, replica, publish) is :mod:`lakepulse.operations.rebuild`."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from lakepulse.core.settings import DBT_PROJECT_DIR, Settings


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
    """Run a dbt command against this data directory; raises ``CalledProcessError`` on
    failure."""
    settings.ensure_dirs()
    return subprocess.run(
        dbt_command(settings, *args),
        env=settings.process_env(),
        cwd=DBT_PROJECT_DIR,
        check=True,
        text=True,
        capture_output=capture,
    )


def build_args(full_refresh: bool = False, settings: Settings | None = None) -> list[str]:
    """The pipeline's dbt build: every model, seed and data test. Unit tests check model logic
    on fixed inputs, not the data: they run in development and CI (`dbt build`, `dbt test
    --select test_type:unit`), not every minute. ``full_refresh`` rebuilds the incremental
    models from bronze (the experiment snapshot history is kept).

    Seeds (funnel, experiment and channel definitions) change by hand, rarely: with
    ``settings``, a build leaves them and their tests out when they are as this warehouse last
    built them (see :func:`remember_seeds`), which saves a minute's run some forty dbt nodes."""
    args = ["build", "--exclude-resource-type", "unit_test"]
    if full_refresh:
        return [*args, "--full-refresh"]
    if settings is not None and seeds_built(settings):
        return [*args, "--exclude", "resource_type:seed"]
    return args


def seeds_fingerprint() -> str:
    """A hash of everything that decides the seed tables: the CSVs, their YAML and the
    project file (column types, schema)."""
    digest = hashlib.sha256()
    seeds = DBT_PROJECT_DIR / "seeds"
    for path in [*sorted(seeds.iterdir()), DBT_PROJECT_DIR / "dbt_project.yml"]:
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def seeds_built(settings: Settings) -> bool:
    """Whether the warehouse's seed tables were built from the seeds as they are now."""
    marker = settings.seeds_marker_path
    return (
        settings.warehouse_path.exists()
        and marker.exists()
        and marker.read_text().strip() == seeds_fingerprint()
    )


def remember_seeds(settings: Settings, args: list[str]) -> None:
    """After a build with ``args`` succeeded: if it built the seeds, record their fingerprint,
    so the next builds can leave them out until they change."""
    if "--exclude" not in args:
        settings.seeds_marker_path.write_text(seeds_fingerprint() + "\n")
