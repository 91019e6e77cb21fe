"""The `triggers` group: triggers.yml (with a blocking validity check) and one asset per
trigger, materialized by one fire run after the marts (lakepulse.triggers.firing.fire). The
firing is imported where it runs: the code server loads these definitions and must not import
DuckDB and pyarrow with them."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
    multi_asset,
)

from lakepulse.core.settings import Settings
from lakepulse.triggers.definitions import TriggerDefinitionError, install, load, running
from orchestration.resources import LakepulseResource

GROUP = "triggers"
TRIGGERS_YML = AssetKey([GROUP, "triggers_yml"])
OWNER = "team:analytics-engineering"


@asset(
    key=TRIGGERS_YML,
    group_name=GROUP,
    owners=[OWNER],
    kinds={"yaml"},
    description="dbt_project/triggers.yml, validated and installed as the running definitions "
    "(the last valid copy under LAKEPULSE_HOME keeps running when the file is refused).",
)
def triggers_yml(context: AssetExecutionContext, lakepulse: LakepulseResource) -> MaterializeResult:
    installed = install(lakepulse.settings)
    if installed.error:
        context.log.error(f"triggers.yml refused: {installed.error}")
    return MaterializeResult(
        metadata={
            "running_triggers": MetadataValue.json(
                [t.name for t in installed.definitions.triggers]
            ),
            "refused": installed.error or "",
        }
    )


@asset_check(
    asset=TRIGGERS_YML,
    name="triggers_yml_valid",
    blocking=True,
    description="triggers.yml parses and every trigger, kind parameter and destination name "
    "is valid. Blocking: nothing downstream of the file runs on a refused file.",
)
def triggers_yml_valid() -> AssetCheckResult:
    try:
        definitions = load()
    except TriggerDefinitionError as err:
        return AssetCheckResult(
            passed=False, severity=AssetCheckSeverity.ERROR, description=str(err)
        )
    return AssetCheckResult(passed=True, metadata={"triggers": len(definitions.triggers)})


def build_trigger_assets(settings: Settings):
    """One asset per trigger, after the dbt model its candidates come from: the triggers
    file's when it is valid (what the next run installs), else the last installed. Read only:
    loading the definitions installs nothing (the triggers_yml asset and every build do)."""
    try:
        definitions = load()
    except TriggerDefinitionError:
        definitions = running(settings)
    if not definitions.triggers:
        return []
    specs = [
        AssetSpec(
            key=AssetKey([GROUP, t.name]),
            deps=[AssetKey([t.model])],
            group_name=GROUP,
            owners=[OWNER],
            kinds={"delta"},
            description=f"Firings of trigger {t.name} (kind {t.kind}), recorded exactly once "
            "in lake/triggers/firings and written back as Trigger Fired events.",
            skippable=True,
        )
        for t in definitions.triggers
    ]

    @multi_asset(
        name="fire_triggers",
        specs=specs,
        op_tags={"lakepulse/stage": "fire"},
        can_subset=True,
    )
    def fire_triggers(context: AssetExecutionContext, lakepulse: LakepulseResource):
        from lakepulse.triggers.firing import fire, firing_counts

        result = fire(lakepulse.settings)
        context.log.info(result.summary())
        if result.refused:
            context.log.error(f"triggers.yml refused, previous definitions ran: {result.refused}")
        counts = firing_counts(lakepulse.settings)
        for key in context.selected_asset_keys:
            name = key.path[-1]
            outcome = result.outcomes.get(name)
            count = counts.get(name, {"last_hour": 0, "last_day": 0, "total": 0})
            yield MaterializeResult(
                asset_key=key,
                metadata={
                    "fired_now": len(outcome.fired) if outcome else 0,
                    "candidates": outcome.candidates if outcome else 0,
                    "cooling_down": outcome.cooling_down if outcome else 0,
                    "outside_propensity": outcome.outside_propensity if outcome else 0,
                    "firings_last_hour": count["last_hour"],
                    "firings_last_day": count["last_day"],
                    "firings_total": count["total"],
                },
            )

    return [fire_triggers]
