"""The one rebuild: dbt build of the marts, then the read replica, then PostgreSQL.

``lakepulse build``, ``lakepulse replay``, erasure, retention and the Dagster dbt asset all go
through these functions, so what surrounds a build (the trigger definitions and tables dbt reads,
the seeds fingerprint, the replica readers open, the publish) is written once."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from lakepulse.core.locks import exclusive_lock
from lakepulse.core.settings import Settings
from lakepulse.triggers.definitions import Installed, install
from lakepulse.warehouse.dbt import (
    build_args,
    ensure_manifest,
    project_fingerprint,
    remember_build,
    run_dbt,
)
from lakepulse.warehouse.prediction_tables import ensure_prediction_tables
from lakepulse.warehouse.publish import publish
from lakepulse.warehouse.replica import refresh_replica
from lakepulse.warehouse.schema_drift import (
    Drift,
    checked_already,
    drifted_models,
    remember_checked,
)
from lakepulse.warehouse.trigger_tables import ensure_trigger_tables


def pipeline_turn(settings: Settings, on_wait: Callable[[], None] | None = None):
    """The pipeline lock (``Settings.pipeline_lock_path``), for a build outside the worker:
    it waits for the worker's cycle to end, and the worker's next cycle waits for it."""
    return exclusive_lock(settings.pipeline_lock_path, on_wait=on_wait)


def prepare_dbt(settings: Settings) -> Installed:
    """What must hold before dbt starts: directories, triggers.yml validated and installed
    (dbt reads only validated definitions; a refused file leaves the previous ones, and the
    returned ``error`` says why), and the trigger tables dbt reads as sources."""
    installed = install(settings)
    ensure_sources(settings)
    return installed


def ensure_sources(settings: Settings) -> None:
    """The tables dbt reads as sources but does not write (trigger firings and deliveries,
    customer-lifetime fits): empty until their writers' first rows, but there."""
    settings.ensure_dirs()
    ensure_trigger_tables(settings)
    ensure_prediction_tables(settings)


def prepare_build(
    settings: Settings,
    full_refresh: bool = False,
    on_migrate: Callable[[list[Drift]], None] | None = None,
) -> list[str]:
    """:func:`prepare_dbt` and :func:`migrate_changed_schemas`, then the pipeline's dbt build
    arguments (seeds left out while unchanged)."""
    prepare_dbt(settings)
    if not full_refresh:
        migrate_changed_schemas(settings, on_migrate)
    return build_args(full_refresh, settings)


def migrate_changed_schemas(
    settings: Settings, on_migrate: Callable[[list[Drift]], None] | None = None
) -> list[Drift]:
    """Rebuild, from bronze, each incremental model whose table no longer has the columns its
    contract names (a release changed them), and every model downstream of it, before the
    build that would otherwise stop on it every minute. Downstream incremental models are
    rebuilt too: rows they kept were computed from the old columns. ``on_migrate`` hears of
    the models first (a full refresh of a large history takes minutes). Checked once per
    version of the project (its files' fingerprint); returns what was rebuilt. The experiment
    snapshot history survives, as in any full refresh (``full_refresh: false``)."""
    project = project_fingerprint()
    if checked_already(settings, project):
        return []
    if not settings.warehouse_path.exists():  # nothing built yet: the build follows the project
        remember_checked(settings, project)
        return []
    ensure_manifest(settings)  # the columns as the project has them now
    drifts = drifted_models(settings)
    if drifts:
        if on_migrate:
            on_migrate(drifts)
        # With every table model too: a model downstream of a drifted one may also read a
        # table model the same release changed (its columns), which an incremental run of
        # the pipeline would only rebuild after this migration.
        selection = " ".join(
            [*(f"{drift.model}+" for drift in drifts), "config.materialized:table"]
        )
        run_dbt(
            settings,
            "build",
            "--exclude-resource-type",
            "unit_test",
            "--full-refresh",
            "--select",
            selection,
        )
    remember_checked(settings, project)
    return drifts


def finish_build(settings: Settings, args: list[str]) -> None:
    """After a build with ``args`` succeeded: remember the seeds it built, and swap in a fresh
    read replica (ad-hoc SQL, checks, sensors and publish read that copy, never the live file)."""
    remember_build(settings, args)
    refresh_replica(settings)


def run_build(
    settings: Settings,
    *dbt_args: str,
    capture: bool = False,
    on_migrate: Callable[[list[Drift]], None] | None = None,
    on_wait: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess:
    """``lakepulse build [DBT_ARGS]``: :func:`migrate_changed_schemas` (unless a full refresh
    was asked for), then a plain ``dbt build`` with the user's arguments (every model, seed
    and test when none), then the replica. Waits for the pipeline worker's cycle (after
    ``on_wait``) and holds the pipeline lock throughout. Raises ``CalledProcessError``."""
    with pipeline_turn(settings, on_wait):
        prepare_dbt(settings)
        if "--full-refresh" not in dbt_args:
            migrate_changed_schemas(settings, on_migrate)
        result = run_dbt(settings, "build", *dbt_args, capture=capture)
        refresh_replica(settings)
        return result


def rebuild(settings: Settings, full_refresh: bool = False, capture: bool = False) -> None:
    """Build every model (from bronze with ``full_refresh``: ``lakepulse replay``), refresh
    the replica, and publish to PostgreSQL when one is configured. Under the pipeline lock:
    the worker's cycles wait for it, and it for theirs."""
    with pipeline_turn(settings):
        args = prepare_build(settings, full_refresh)
        run_dbt(settings, *args, capture=capture)
        finish_build(settings, args)
        if settings.pg_url:
            # After a full refresh (replay, erasure, retention) every mart is copied and swapped
            # in whole: the old tables, erased rows among them, leave PostgreSQL with their files.
            publish(settings, settings.pg_url, force=full_refresh)
