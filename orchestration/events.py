"""What a cycle of the pipeline worker looks like on the asset graph: a materialization of
bronze after each load, with its blocking check's result, of every dbt model of each tier
built, with the freshness checks' result of the served marts among them (at most once a
:data:`FRESHNESS_REPORT_EVERY_S`), and of the PostgreSQL marts when a tier published. A
mapping, nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dagster import AssetCheckEvaluation, AssetKey, AssetMaterialization, MetadataValue

from lakepulse.core.settings import Settings
from lakepulse.warehouse.tiers import stale_after_s, tier_plan
from orchestration.checks import fresh_when_built

if TYPE_CHECKING:  # the worker's workflows: imported by the op that runs it, not the code server
    from lakepulse.operations.worker import CycleReport

BRONZE_EVENTS = AssetKey(["raw", "events"])
PUBLISHED = AssetKey(["postgres", "marts"])

FRESHNESS_REPORT_EVERY_S = 60.0
"""A served mart's freshness is reported at most this often: the live tier builds every few
seconds, and each report is an event in the run's log (the check stays fresh for minutes)."""


def cycle_events(
    cycle: CycleReport, settings: Settings, freshness_reported: dict[str, float] | None = None
) -> Iterator[AssetMaterialization | AssetCheckEvaluation]:
    """``freshness_reported``: when each mart's freshness was last reported, kept by the caller
    across cycles (updated here); None reports none."""
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
        if freshness_reported is None:
            continue
        for mart in sorted(plan.marts(tier)):
            if cycle.started_at - freshness_reported.get(mart, 0.0) >= FRESHNESS_REPORT_EVERY_S:
                freshness_reported[mart] = cycle.started_at
                yield fresh_when_built(mart, cycle.started_at, stale_after_s(tier))
    if cycle.published:
        yield AssetMaterialization(
            PUBLISHED,
            metadata={
                "tiers": ", ".join(cycle.tiers),
                "marts": MetadataValue.json(cycle.published),
            },
        )
