"""Resources, all configured from the environment (``LAKEPULSE_HOME`` and friends).

Workflows are imported when a run sets a resource up: the code server loads these definitions
and must not import DuckDB, pyarrow and psycopg with them."""

from __future__ import annotations

import os

from dagster import ConfigurableResource, InitResourceContext
from dagster_dbt import DbtCliResource, DbtProject

from lakepulse.core.settings import DBT_PROJECT_DIR, Settings
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

        from lakepulse.operations.rebuild import ensure_sources

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


def dbt_resource(project: DbtProject) -> DbtCliResource:
    # The dbt next to this interpreter: the venv's, whether or not it is on PATH.
    return DbtCliResource(
        project_dir=project, profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
    )
