"""A slower tier's turn in waves (issue #25): what reads outside the tier, and what that reads
inside it, in the first wave; the rest after it."""

from __future__ import annotations

from lakepulse.warehouse.tiers import TierPlan

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
