"""Resources, all configured from the environment (``LAKEPULSE_HOME`` and friends)."""

from __future__ import annotations

from dagster import ConfigurableResource
from dagster_dbt import DbtCliResource, DbtProject

from lakepulse.config import DBT_PROJECT_DIR, Settings


class LakepulseResource(ConfigurableResource):
    """Where the platform's data lives; assets and sensors read paths from here."""

    home: str

    @property
    def settings(self) -> Settings:
        return Settings.from_env({"LAKEPULSE_HOME": self.home})


def dbt_project_for(settings: Settings) -> DbtProject:
    """The dbt project with artifacts kept per data directory; parsed on first use."""
    project = DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=DBT_PROJECT_DIR,
        target_path=settings.dbt_target_dir,
    )
    if not project.manifest_path.exists():
        project.preparer.prepare(project)
    else:
        project.prepare_if_dev()
    return project


def dbt_resource(project: DbtProject) -> DbtCliResource:
    return DbtCliResource(project_dir=project, profiles_dir=str(DBT_PROJECT_DIR))
