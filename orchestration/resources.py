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
from lakepulse.warehouse.dbt import dbt_executable, ensure_manifest


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

    @property
    def settings(self) -> Settings:
        """This data directory's settings, the rest (the PostgreSQL URL, ports) from the
        process's environment as every other lakepulse process reads them."""
        return Settings.from_env({**os.environ, "LAKEPULSE_HOME": self.home})


def dbt_project_for(settings: Settings) -> DbtProject:
    """The dbt project with artifacts kept per data directory; parsed on first use."""
    project = DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=DBT_PROJECT_DIR,
        target_path=settings.dbt_target_dir,
    )
    # Parsed with our own dbt invocation (dagster-dbt's preparer needs `dbt` on PATH), and only
    # when a project file changed: every run process loads these definitions, and a parse
    # costs seconds of the minute budget.
    ensure_manifest(settings)
    return project


class LakepulseDbtCliResource(DbtCliResource):
    """dagster-dbt's CLI resource without the two costs it adds to every invocation: the
    in-process dbt adapter, and ``dbt --version`` run as a subprocess.

    The adapter only serves `fetch_row_counts` and `fetch_column_metadata`, which we do not use
    (on DuckDB they would wait for the build's lock anyway), and opening it (profile, plugin,
    DuckDB extensions) costs ~3 s of every minute's run; without one dagster-dbt behaves as
    documented for the Fusion engine. Both override private members of dagster-dbt 0.29
    (pinned)."""

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
