"""Running dbt outside Dagster (``lakepulse build``), with the same project and profile."""

from __future__ import annotations

import hashlib
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
    from lakepulse.warehouse.trigger_tables import ensure_trigger_tables

    ensure_trigger_tables(settings)  # dbt's trigger sources must exist before any firing
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


def rewrite_warehouse(settings: Settings) -> None:
    """Compact the warehouse into a fresh file (old blocks, and any deleted rows in them, are
    gone), then refresh the replica from it. Takes the warehouse's write lock: run it when no
    build is running."""
    from lakepulse.duck import copy_database
    from lakepulse.query import refresh_replica

    if settings.warehouse_path.exists():
        copy_database(settings.warehouse_path, settings.warehouse_path)
        refresh_replica(settings)


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


def _seeds_marker(settings: Settings) -> Path:
    # Beside the warehouse file: a new or deleted warehouse loses the marker with it.
    return settings.warehouse_path.with_name("seeds.sha256")


def seeds_built(settings: Settings) -> bool:
    """Whether the warehouse's seed tables were built from the seeds as they are now."""
    marker = _seeds_marker(settings)
    return (
        settings.warehouse_path.exists()
        and marker.exists()
        and marker.read_text().strip() == seeds_fingerprint()
    )


def remember_seeds(settings: Settings, args: list[str]) -> None:
    """After a build with ``args`` succeeded: if it built the seeds, record their fingerprint,
    so the next builds can leave them out until they change."""
    if "--exclude" not in args:
        _seeds_marker(settings).write_text(seeds_fingerprint() + "\n")


def rebuild_marts(settings: Settings, full_refresh: bool = False, capture: bool = False) -> None:
    """dbt build of every model, then publish to PostgreSQL when configured. The triggers
    file is validated (and installed when valid) first: dbt only reads validated definitions."""
    from lakepulse.triggers.definitions import install  # moves to operations/rebuild (issue 15)

    install(settings)
    args = build_args(full_refresh, settings)
    run_dbt(settings, *args, capture=capture)
    remember_seeds(settings, args)
    if settings.pg_url:
        from lakepulse.publish import publish

        publish(settings, settings.pg_url)


def rebuild_after_retention(settings: Settings, removed: dict[str, dict]) -> bool:
    """Incremental models keep what they were built from, so bronze events dropped by
    retention would live on in the warehouse: when any were dropped, rebuild from bronze (a
    full refresh; nightly, with the retention schedule). Returns whether it rebuilt."""
    if not removed.get("bronze_events", {}).get("rows_removed"):
        return False
    rebuild_marts(settings, full_refresh=True, capture=True)
    return True
