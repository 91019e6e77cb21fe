"""What a cycle of the pipeline worker looks like on the asset graph: a materialization of
bronze after each load, with its blocking check's result, of every dbt model of each tier
built, and of the PostgreSQL marts when a tier published. A mapping, nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dagster import AssetCheckEvaluation, AssetKey, AssetMaterialization, MetadataValue

from lakepulse.core.settings import Settings
from lakepulse.warehouse.tiers import tier_plan

if TYPE_CHECKING:  # the worker's workflows: imported by the op that runs it, not the code server
    from lakepulse.operations.worker import CycleReport

BRONZE_EVENTS = AssetKey(["raw", "events"])
PUBLISHED = AssetKey(["postgres", "marts"])


def cycle_events(
    cycle: CycleReport, settings: Settings
) -> Iterator[AssetMaterialization | AssetCheckEvaluation]:
    if cycle.bronze_passed is not None:
        yield AssetMaterialization(
            BRONZE_EVENTS, metadata={"landing_through": cycle.landing or "", "worker": True}
        )
        yield AssetCheckEvaluation(
            asset_key=BRONZE_EVENTS,
            check_name="bronze_events_quality",
            passed=cycle.bronze_passed,
            description=None if cycle.bronze_passed else cycle.error,
        )
    if not cycle.tiers:
        return
    plan = tier_plan(settings.dbt_manifest_path)
    for tier in cycle.tiers:
        seconds = cycle.stages.get(f"dbt:{tier}", 0.0)
        for model in sorted(plan.of(tier)):
            yield AssetMaterialization(
                AssetKey([model]), metadata={"tier": tier, "tier_build_s": round(seconds, 2)}
            )
    if cycle.published:
        yield AssetMaterialization(
            PUBLISHED,
            metadata={
                "tiers": ", ".join(cycle.tiers),
                "marts": MetadataValue.json(cycle.published),
            },
        )
