"""triggers.yml validation (every mistake named by file, trigger and field), the running copy
that survives a refused file, the deterministic holdout arm and firing ids."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lakepulse.core.settings import TRIGGERS_FILE
from lakepulse.triggers.definitions import (
    TriggerDefinitionError,
    assign_arm,
    dbt_definitions_path,
    install,
    load,
    parse,
    running,
)
from lakepulse.triggers.firing import firing_id, subject_of

GOOD = """
version: 1
destinations:
  crm: {type: webhook, url: "${CRM_WEBHOOK_URL}"}
triggers:
  - name: cart_reminder
    kind: abandoned_cart
    after_minutes: 30
    tenants: [acme]
    cooldown_hours: 24
    holdout: 0.1
    measure_days: 7
    destinations: [crm]
"""


def with_trigger(extra: str) -> str:
    return GOOD + extra


def test_the_project_file_is_valid_and_defaults_are_filled():
    definitions = load(TRIGGERS_FILE)
    assert definitions.get("cart_reminder").params == {"after_minutes": 30, "max_age_hours": 24}
    kinds = {t.kind for t in definitions.triggers}
    assert {"abandoned_cart", "welcome", "anomaly", "metric_threshold"} <= kinds
    reminder = parse(GOOD).get("cart_reminder")
    assert reminder.tenants == ("acme",) and reminder.destinations == ("crm",)
    assert reminder.applies_to("acme") and not reminder.applies_to("globex")
    assert reminder.model == "trigger_abandoned_cart"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("after_minutes: 30", "after_minutes: soon"),
         "trigger 'cart_reminder': field 'after_minutes': must be a number, got 'soon'"),
        (GOOD.replace("    after_minutes: 30\n", ""),
         "trigger 'cart_reminder': field 'after_minutes': is required for kind abandoned_cart"),
        (GOOD.replace("after_minutes: 30", "after_minutes: 0"),
         "field 'after_minutes': must be at least 1"),
        (GOOD.replace("kind: abandoned_cart", "kind: abandoned"),
         "trigger 'cart_reminder': field 'kind': unknown kind 'abandoned'"),
        (GOOD.replace("destinations: [crm]", "destinations: [slack]"),
         "field 'destinations': unknown destination 'slack' (destinations: crm)"),
        (GOOD.replace("holdout: 0.1", "holdout: 1.5"), "field 'holdout': must be below 1"),
        (GOOD.replace("cooldown_hours: 24", "cooldown_hours: -1"),
         "field 'cooldown_hours': must be at least 0"),
        (GOOD.replace("tenants: [acme]", "tenants: acme"),
         "field 'tenants': must be a list of tenant ids"),
        (GOOD.replace("measure_days: 7", "measure_days: 7\n    after_minute: 3"),
         "trigger 'cart_reminder': field 'after_minute': unknown field for kind abandoned_cart"),
        (GOOD.replace("name: cart_reminder", "name: Cart-Reminder"), "field 'name': triggers[0]"),
        (GOOD.replace("name: cart_reminder", "name: firings"), "'firings' is reserved"),
        (with_trigger("  - {name: cart_reminder, kind: welcome}\n"), "is defined twice"),
        (GOOD.replace("{type: webhook, ", "{"), "destination 'crm' needs a type"),
        (with_trigger("  - {name: mine, kind: custom, model: no_such_model}\n"),
         "trigger 'mine': field 'model': no dbt model no_such_model under models/triggers/"),
        (with_trigger("  - {name: low, kind: metric_threshold, metric: conversion_rate}\n"),
         "trigger 'low': field 'below': needs exactly one of below or above"),
        (with_trigger("  - {name: low, kind: metric_threshold, metric: bounce, below: 1}\n"),
         "field 'metric': must be one of"),
        (with_trigger("  - {name: a, kind: anomaly, metrics: [visitors]}\n"), "field 'metrics'"),
        (with_trigger("  - {name: n, kind: nth_order_over, n: 99, revenue: 1, period: year}\n"),
         "field 'period': must be one of month, quarter"),
        (with_trigger("  - {name: rescue, kind: campaign_forecast}\n"),
         "trigger 'rescue': field 'below': is required for kind campaign_forecast"),
        (with_trigger("  - {name: rescue, kind: campaign_forecast, below: -5}\n"),
         "field 'below': must be at least 0"),
        (with_trigger(
            "  - {name: rescue, kind: campaign_forecast, below: 5, min_propensity: 0.5}\n"),
         "field 'min_propensity': applies to user-level kinds only, not campaign_forecast"),
        ("version: 2\n", "version 2 is not supported"),
        ("triggers: [\n", "is not valid YAML"),
        ("surprise: 1\n", "unknown top-level field 'surprise'"),
    ],
)  # fmt: skip
def test_every_mistake_is_named_by_file_trigger_and_field(text, expected):
    with pytest.raises(TriggerDefinitionError) as err:
        parse(text, "dbt_project/triggers.yml")
    assert str(err.value).startswith("dbt_project/triggers.yml")
    assert expected in str(err.value)


def test_a_custom_trigger_names_a_model_under_models_triggers():
    definitions = parse(with_trigger("  - {name: big, kind: custom, model: big_cart}\n"))
    assert definitions.get("big").model == "big_cart"


def test_a_refused_file_leaves_the_previous_definitions_running(settings, tmp_path: Path):
    source = tmp_path / "triggers.yml"
    source.write_text(GOOD)
    first = install(settings, source)
    assert first.error is None and first.changed
    assert dbt_definitions_path(settings).read_text().count("\n") == 1
    source.write_text(GOOD.replace("after_minutes: 30", "after_minutes: soon"))
    refused = install(settings, source)
    assert "field 'after_minutes'" in refused.error
    assert refused.definitions.get("cart_reminder").params["after_minutes"] == 30
    assert running(settings).get("cart_reminder").params["after_minutes"] == 30
    assert '"after_minutes": 30' in dbt_definitions_path(settings).read_text()
    source.write_text(GOOD.replace("after_minutes: 30", "after_minutes: 45"))
    assert install(settings, source).definitions.get("cart_reminder").params["after_minutes"] == 45
    assert '"after_minutes": 45' in dbt_definitions_path(settings).read_text()


def test_arm_is_the_documented_hash_deterministic_and_close_to_the_holdout_share():
    digest = hashlib.sha256(b"cart_reminder|acme|u1").hexdigest()
    expected = "holdout" if int(digest[:15], 16) / 16**15 < 0.3 else "treatment"
    assert assign_arm("cart_reminder", "acme", "u1", 0.3) == expected
    arms = [assign_arm("cart_reminder", "acme", f"u{i}", 0.1) for i in range(20_000)]
    assert arms == [assign_arm("cart_reminder", "acme", f"u{i}", 0.1) for i in range(20_000)]
    assert 0.09 < arms.count("holdout") / len(arms) < 0.11
    assert {assign_arm("t", "acme", f"u{i}", 0) for i in range(1000)} == {"treatment"}
    # Independent across triggers: another trigger holds out other users.
    other = [assign_arm("welcome", "acme", f"u{i}", 0.1) for i in range(20_000)]
    both = sum(a == b == "holdout" for a, b in zip(arms, other, strict=True))
    assert both < 0.02 * len(arms)


def test_firing_ids_are_deterministic_and_tell_every_part_apart():
    base = firing_id("cart_reminder", "acme", "u1", "2026-11-20T10:00:00")
    assert base == firing_id("cart_reminder", "acme", "u1", "2026-11-20T10:00:00")
    assert len(base) == 32 and int(base, 16) >= 0
    others = {
        firing_id("welcome", "acme", "u1", "2026-11-20T10:00:00"),
        firing_id("cart_reminder", "globex", "u1", "2026-11-20T10:00:00"),
        firing_id("cart_reminder", "acme", "u2", "2026-11-20T10:00:00"),
        firing_id("cart_reminder", "acme", "u1", "2026-11-20T11:00:00"),
    }
    assert base not in others and len(others) == 4
    assert subject_of(None, '{"metric": "revenue"}') == "revenue"
    assert subject_of("u1", '{"metric": "revenue"}') == "u1"
    # campaign_forecast: each campaign its own subject, so campaigns cool down apart
    both = '{"subject": "campaign|spring", "metric": "revenue_7d"}'
    assert subject_of(None, both) == "campaign|spring"
