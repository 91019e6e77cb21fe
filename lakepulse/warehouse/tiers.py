"""Freshness tiers: every dbt model says in its YAML (``config: meta: tier:``) how fresh BI
needs it, and the pipeline worker builds, publishes and fires each tier on its own cadence.

- ``live``: the per-minute traffic and conversion marts and what they need, and the trigger
  kinds that watch them (``anomaly``, ``metric_threshold``). Built in every cycle.
- ``session``: sessions, users, funnels, revenue velocity, buyer signals, predictions per
  customer and the user-level trigger kinds.
- ``daily``: cohorts, campaign KPIs, experiment results and what only changes by the day.

A model reads only models of its own tier or a faster one (``tests/unit/test_tiers.py`` holds
the project to it), so a tier never waits for a slower one."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from lakepulse.warehouse.publish.marts import ServedMart, served_marts_of


@dataclass(frozen=True)
class Tier:
    name: str
    every_s: float
    """How often the worker builds it (0: every cycle)."""
    promise_s: float
    """p95 from the collector's 200 to the row visible in PostgreSQL."""


TIERS: tuple[Tier, ...] = (
    Tier("live", 0.0, 15.0),
    Tier("session", 30.0, 60.0),
    Tier("daily", 300.0, 600.0),
)
TIER_NAMES = tuple(tier.name for tier in TIERS)


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

    def marts(self, tier: str) -> dict[str, ServedMart]:
        """The published marts built in ``tier``."""
        return {name: mart for name, mart in self.served.items() if self.models.get(name) == tier}

    def of(self, tier: str) -> set[str]:
        """The models built in ``tier`` (a trigger fires in the tier of its candidate model)."""
        return {model for model, model_tier in self.models.items() if model_tier == tier}


def tier_plan(manifest_path: Path) -> TierPlan:
    """Each model's tier, as dbt parsed it (a model without one is an error: tests say so).
    Read again only when dbt wrote the manifest again: the worker asks every cycle."""
    return _plan(manifest_path, manifest_path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _plan(manifest_path: Path, written_ns: int) -> TierPlan:
    manifest = json.loads(manifest_path.read_text())
    return TierPlan(
        {
            node["name"]: node["config"].get("meta", {}).get("tier", "")
            for node in manifest["nodes"].values()
            if node["resource_type"] == "model"
        },
        served_marts_of(manifest),
    )
