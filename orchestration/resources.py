"""Resources, all configured from the environment (``LAKEPULSE_HOME`` and friends)."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Sequence
from functools import cached_property

from dagster import ConfigurableResource, InitResourceContext
from dagster_dbt import DbtCliResource, DbtProject
from packaging.version import Version

from lakepulse.core.settings import DBT_PROJECT_DIR, Settings
from lakepulse.operations.rebuild import ensure_sources
from lakepulse.warehouse.dbt import dbt_executable


class LakepulseResource(ConfigurableResource):
    """Where the platform's data lives; assets and sensors read paths from here."""

    home: str

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # great-expectations takes ~5 s to import. Imported here, as the run starts and before
        # its first step lists the landing log, rather than inside the blocking bronze check,
        # which stands between the load and the marts: there every second delays each event.
        # (Not on a thread beside the load: both import SQLAlchemy, and a half-imported module
        # seen from the other thread failed the load.)
        import great_expectations  # noqa: F401

        # What loading the definitions no longer does (it must leave no trace): this data
        # directory's folders and the source tables dbt reads, before any step needs them.
        ensure_sources(self.settings)

    @property
    def settings(self) -> Settings:
        """This data directory's settings, the rest (the PostgreSQL URL, ports) from the
        process's environment as every other lakepulse process reads them."""
        return Settings.from_env({**os.environ, "LAKEPULSE_HOME": self.home})


def dbt_project_for(settings: Settings) -> DbtProject:
    """The dbt project with artifacts kept per data directory. Nothing is parsed or written
    here: the definitions take the manifest from
    :func:`~lakepulse.warehouse.dbt.parsed_manifest`, the runs write it."""
    return DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=DBT_PROJECT_DIR,
        target_path=settings.dbt_target_dir,
    )


class LakepulseDbtCliResource(DbtCliResource):
    """dagster-dbt's CLI resource without the two costs it adds to every invocation: the
    in-process dbt adapter, and ``dbt --version`` run as a subprocess.

    The adapter only serves `fetch_row_counts` and `fetch_column_metadata`, which we do not use
    (on DuckDB they would wait for the build's lock anyway), and opening it (profile, plugin,
    DuckDB extensions) cost ~2.5 s of every run (commit 52d043e); the version subprocess,
    another start of dbt, ~4 s (4e400e7). Without an adapter dagster-dbt behaves as documented
    for the Fusion engine.

    These are the project's only overrides of private members, kept on purpose (issue #28):
    dagster-dbt 0.29.27 (pinned in requirements.lock) has no public switch for either.
    ``DbtCliResource.cli`` always reads ``self._cli_version`` and, below dbt 2, always calls
    ``self._initialize_dbt_core_adapter``; its public fields (``dbt_executable``,
    ``global_config_flags``, ``profile``, ``target``, ``state_path``) reach neither, and
    ``DbtCliInvocation.run``, which takes the adapter and version as arguments, is not public
    either. The worker does not use this resource (it runs dbt in process); the runs that do
    are replay, the rebuild after retention and the stopped per-load cadence.
    ``tests/integration/test_definitions_load.py`` fails when an upgrade renames the members,
    so the overrides cannot silently turn into dead code."""

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        return None

    @cached_property
    def _cli_version(self) -> Version:
        """The installed dbt-core's version. dagster-dbt asks ``dbt --version`` in a subprocess
        on every invocation (another start of dbt: ~4 s of a busy minute); the executable is
        the one beside this interpreter (:func:`dbt_executable`), so the package says it."""
        return Version(importlib.metadata.version("dbt-core"))


def dbt_resource(project: DbtProject) -> DbtCliResource:
    # The dbt next to this interpreter: the venv's, whether or not it is on PATH.
    return LakepulseDbtCliResource(
        project_dir=project, profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
    )
