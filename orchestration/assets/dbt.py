"""Silver and gold layers: every dbt model as an asset, dbt tests as asset checks.

The build's workflows are imported where the asset runs: the code server loads these
definitions and must not import DuckDB, pyarrow and psycopg with them."""

from collections.abc import Iterator, Mapping
from typing import Any

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    Config,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from lakepulse.core.settings import Settings
from lakepulse.warehouse.dbt import ensure_manifest

OWNER = "team:analytics-engineering"
TIER_TAG = "lakepulse/tier"


class LakepulseDbtTranslator(DagsterDbtTranslator):
    """Groups dbt models by layer folder (staging, intermediate, marts); sources keep their
    ``<source>/<table>`` keys so ``raw/events`` joins the dlt asset upstream."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "seed":
            return "staging"  # seeds are built into the staging schema, beside stg_*
        if dbt_resource_props["resource_type"] != "model":
            return None
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "marts"

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return AssetKey([dbt_resource_props["name"]])

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return [OWNER]

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        """The model's freshness tier (``meta: tier`` in its YAML) as a tag, shown on the
        asset and usable in selections (``tag:lakepulse/tier=live``)."""
        tags = dict(super().get_tags(dbt_resource_props))
        tier = (dbt_resource_props.get("config", {}).get("meta") or {}).get("tier")
        return {**tags, TIER_TAG: tier} if tier else tags

    def get_asset_check_spec(
        self,
        asset_spec: AssetSpec,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: DbtProject | None,
    ) -> AssetCheckSpec | None:
        """dbt tests of the marts (what BI reads) are asset checks; the others run in the same
        build, blocking what is downstream of them inside dbt as any dbt test does, without a
        check of their own. Each check costs every minute's run two event-log writes when
        the run is planned and two when it reports (~0.1 s each on SQLite): 165 of them were a
        third of a run."""
        test = manifest["nodes"].get(unique_id, {})
        attached = manifest["nodes"].get(test.get("attached_node") or "", {})
        if attached.get("fqn", [None, None])[1:2] != ["marts"]:
            return None
        return super().get_asset_check_spec(asset_spec, manifest, unique_id, project)


class DbtBuildConfig(Config):
    """`full_refresh`: rebuild incremental models from bronze (the replay job sets it)."""

    full_refresh: bool = False


def build_dbt_assets(
    project: DbtProject, settings: Settings, manifest: Mapping[str, Any]
) -> AssetsDefinition:
    """Every dbt node of ``manifest`` (read, not written, by the caller) as an asset."""

    @dbt_assets(
        manifest=manifest,
        project=project,
        dagster_dbt_translator=LakepulseDbtTranslator(),
        name="dbt_models",
        op_tags={"lakepulse/stage": "transform"},
    )
    def dbt_models(
        context: AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig
    ) -> Iterator:
        from lakepulse.operations.rebuild import finish_build, pipeline_turn, prepare_build
        from lakepulse.warehouse.schema_drift import migration_message

        with pipeline_turn(settings):  # never inside a cycle of the pipeline worker
            args = prepare_build(
                settings,
                config.full_refresh,
                on_migrate=lambda drifts: context.log.warning(migration_message(drifts)),
            )
            # This data directory's parse, when the project changed since (loading the
            # definitions writes nothing, so a fresh home has none yet), then artifacts in the
            # same target, beside the partial-parse state it left under the same profile: dbt
            # re-reads only what changed (a full parse is ~4 s) and no per-run target folder
            # piles up in the project.
            ensure_manifest(settings)
            invocation = dbt.cli(args, context=context, target_path=settings.dbt_target_dir)
            for event in invocation.stream():
                # Tests that are not asset checks arrive as observations: the run's log and
                # dbt's run_results.json already hold them (a failing one fails this step).
                if not isinstance(event, AssetObservation):
                    yield event
            finish_build(settings, args)  # seeds fingerprint, then the replica readers open

    return dbt_models
