"""Freshness tiers: every dbt model says in its YAML (``config: meta: tier:``) how fresh BI
needs it, and the pipeline worker builds, publishes and fires each tier on its own cadence.

- ``live``: the per-minute traffic and conversion marts and what they need, and the trigger
  kinds that watch them (``anomaly``, ``metric_threshold``). Built in every cycle.
- ``session``: sessions, users, funnels, revenue velocity, buyer signals, predictions per
  customer and the user-level trigger kinds.
- ``daily``: cohorts, campaign KPIs, experiment results and what only changes by the day.

A model reads only models of its own tier or a faster one (``tests/integration/test_tiers.py``
holds the project to it), so a tier never waits for a slower one.

A slower tier's turn is built in waves (:meth:`TierPlan.waves`), one dbt invocation each, with
the live tier's cycles between them: the first wave holds every model that reads what those
cycles change (a faster tier's model, a source) and what those models read in their own tier,
so they all see one state; each later wave reads only its own tier's models built earlier in
the turn, which nothing between two waves writes. The turn's marts are those of one build of
the tier, and the live tier never waits for more than one wave."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakepulse.warehouse.publish.marts import ServedMart, served_marts_of


@dataclass(frozen=True)
class Tier:
    name: str
    every_s: float
    """How often the worker builds it (0: every cycle)."""
    promise_s: float
    """p95 from the collector's 200 to the row visible in PostgreSQL."""

    @property
    def stale_after_s(self) -> float:
        """How long after its last build a mart of this tier is shown stale (its freshness
        check warns): the tier's promise, and never less than :data:`STALE_AFTER_AT_LEAST_S`,
        so a live mart does not warn while its worker restarts."""
        return max(self.promise_s, STALE_AFTER_AT_LEAST_S)


STALE_AFTER_AT_LEAST_S = 300.0


TIERS: tuple[Tier, ...] = (
    Tier("live", 0.0, 15.0),
    Tier("session", 30.0, 60.0),
    Tier("daily", 300.0, 600.0),
)
TIER_NAMES = tuple(tier.name for tier in TIERS)


def stale_after_s(tier: str) -> float:
    """:attr:`Tier.stale_after_s` of the tier named ``tier``."""
    return next(known for known in TIERS if known.name == tier).stale_after_s


def tier_selector(tier: str) -> str:
    """dbt's node selector for the models of ``tier`` (their tests come with them)."""
    return f"config.meta.tier:{tier}"


@dataclass(frozen=True)
class TierPlan:
    """What each tier holds, from the parsed project."""

    models: dict[str, str]
    """Model name -> tier."""
    served: dict[str, ServedMart]
    """The marts published to PostgreSQL (their YAML's ``meta: publish:``)."""
    reads: dict[str, frozenset[str]] = field(default_factory=dict)
    """Model name -> what it reads: model names, and ``source:<name>`` for each source. What no
    cycle changes is left out: seeds, and the sources whose YAML says ``meta: edited_by_hand:
    true`` (the trigger definitions, written again only when someone edits triggers.yml)."""

    def marts(self, tier: str) -> dict[str, ServedMart]:
        """The published marts built in ``tier``."""
        return {name: mart for name, mart in self.served.items() if self.models.get(name) == tier}

    def of(self, tier: str) -> set[str]:
        """The models built in ``tier`` (a trigger fires in the tier of its candidate model)."""
        return {model for model, model_tier in self.models.items() if model_tier == tier}

    def waves(self, tier: str) -> list[set[str]]:
        """``tier``'s models in the order a turn builds them, a dbt invocation a wave (see the
        module docstring): every model that reads outside the tier, with what it reads inside
        it, then the rest, which reads only the tier's models built before it."""
        members = self.of(tier)
        first = {model for model in members if self.reads.get(model, frozenset()) - members}
        pending = list(first)
        while pending:  # what the first wave's models read in the tier is built with them
            for upstream in (self.reads.get(pending.pop(), frozenset()) & members) - first:
                first.add(upstream)
                pending.append(upstream)
        return [wave for wave in (first, members - first) if wave]


def tier_plan(manifest_path: Path) -> TierPlan:
    """Each model's tier, as dbt parsed it (a model without one is an error: tests say so).
    Read again only when dbt wrote the manifest again: the worker asks every cycle."""
    return _plan(manifest_path, manifest_path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _plan(manifest_path: Path, written_ns: int) -> TierPlan:
    return tier_plan_of(json.loads(manifest_path.read_text()))


def tier_plan_of(manifest: Mapping[str, Any]) -> TierPlan:
    """:func:`tier_plan` of a manifest already parsed."""
    models = [node for node in manifest["nodes"].values() if node["resource_type"] == "model"]
    by_hand = {
        unique_id
        for unique_id, source in manifest.get("sources", {}).items()
        if source.get("meta", {}).get("edited_by_hand")
    }
    return TierPlan(
        {node["name"]: node["config"].get("meta", {}).get("tier", "") for node in models},
        served_marts_of(manifest),
        {node["name"]: _reads(node, by_hand) for node in models},
    )


def _reads(node: dict, edited_by_hand: set[str]) -> frozenset[str]:
    """What a model reads (see :attr:`TierPlan.reads`), from its parsed ``depends_on``; the
    sources in ``edited_by_hand`` (unique ids) are left out."""
    reads = set()
    for upstream in node["depends_on"]["nodes"]:
        kind, _, rest = upstream.partition(".")
        if kind == "model":
            reads.add(rest.split(".")[-1])
        elif kind == "source" and upstream not in edited_by_hand:
            reads.add(f"source:{rest}")
    return frozenset(reads)
