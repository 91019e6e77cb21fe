"""A slower tier's turn in waves (issue #25): what reads outside the tier, and what that reads
inside it, in the first wave; the rest after it."""

from __future__ import annotations

from lakepulse.warehouse.tiers import TierPlan, tier_plan_of

MODELS = {
    "stg_events": "live",
    "int_sessionized": "session",  # reads the live tier
    "int_sessions": "session",  # reads int_sessionized and the live tier's orders
    "int_identity": "session",  # read by int_sessions only
    "int_rejected": "session",  # reads a source
    "fct_sessions": "session",  # reads int_sessions only
    "mart_funnel": "session",  # reads fct_sessions only
    "mart_rejected": "session",  # reads int_rejected only
    "mart_cohorts": "daily",
}
READS = {
    "stg_events": frozenset({"source:raw.events"}),
    "int_sessionized": frozenset({"stg_events"}),
    "int_sessions": frozenset({"int_sessionized", "int_identity", "stg_events"}),
    "int_identity": frozenset(),
    "int_rejected": frozenset({"source:raw.events_rejected"}),
    "fct_sessions": frozenset({"int_sessions"}),
    "mart_funnel": frozenset({"fct_sessions", "int_identity"}),
    "mart_rejected": frozenset({"int_rejected"}),
    "mart_cohorts": frozenset({"fct_sessions"}),
}


def test_what_reads_outside_the_tier_and_its_upstream_come_first():
    plan = TierPlan(MODELS, {}, READS)
    first, rest = plan.waves("session")
    # int_identity reads nothing, but int_sessions reads it: built in the same state
    assert first == {"int_sessionized", "int_sessions", "int_identity", "int_rejected"}
    assert rest == {"fct_sessions", "mart_funnel", "mart_rejected"}


def test_a_later_wave_reads_only_its_tier_built_before_it():
    plan = TierPlan(MODELS, {}, READS)
    waves = plan.waves("session")
    assert set().union(*waves) == plan.of("session")
    assert sum(len(wave) for wave in waves) == len(plan.of("session"))
    first = waves[0]
    for model in waves[1]:
        assert READS[model] <= plan.of("session")  # nothing that a live cycle changes
    for model in first:
        assert not (READS[model] & waves[1])  # never a model built after it


def test_a_tier_that_reads_nothing_outside_is_one_wave():
    plan = TierPlan({"a": "daily", "b": "daily"}, {}, {"a": frozenset(), "b": frozenset({"a"})})
    assert plan.waves("daily") == [{"a", "b"}]
    assert plan.waves("session") == []


def _manifest(sources: dict[str, dict], models: dict[str, tuple[str, list[str]]]) -> dict:
    """A parsed manifest's shape, as tier_plan_of reads it: models (tier, what they read) and
    sources (their meta)."""
    return {
        "sources": {f"source.p.{name}": {"meta": meta} for name, meta in sources.items()},
        "nodes": {
            f"model.p.{name}": {
                "name": name,
                "resource_type": "model",
                "fqn": ["p", "intermediate", name],
                "config": {"meta": {"tier": tier}},
                "depends_on": {"nodes": reads},
            }
            for name, (tier, reads) in models.items()
        },
    }


def test_a_source_edited_by_hand_is_read_like_a_seed():
    """The trigger definitions change only when someone edits triggers.yml: a kind that reads
    them and its tier's own models is built after the first wave; a source the cycles write
    (the firings) still puts its readers first."""
    manifest = _manifest(
        {"triggers.definitions": {"edited_by_hand": True}, "triggers.firings": {}},
        {
            "stg_events": ("live", []),
            "int_sessions": ("session", ["model.p.stg_events"]),
            "trigger_inactive": (
                "session",
                ["model.p.int_sessions", "source.p.triggers.definitions"],
            ),
            "fct_trigger_firings": ("session", ["source.p.triggers.firings"]),
        },
    )
    plan = tier_plan_of(manifest)
    assert plan.reads["trigger_inactive"] == frozenset({"int_sessions"})
    assert plan.waves("session") == [
        {"int_sessions", "fct_trigger_firings"},
        {"trigger_inactive"},
    ]
