"""Known truth for the trigger kinds beyond abandoned carts (test_triggers.py has those):
hand-written traffic of two tenants whose fate under ``browse_no_cart``, ``inactive``,
``nth_order_over``, ``metric_threshold`` and a ``custom`` model is worked out by hand. Exactly
the expected users (or tenants) fire, once each, and a re-run, the write-back of the Trigger
Fired events and a replay from bronze change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakepulse.triggers.firing import fire
from tests.delivery_support import contract_arm
from tests.integration.test_triggers import added, at, cycle, land, page, track

pytestmark = pytest.mark.integration

TRIGGERS = """
version: 1
triggers:
  - name: browse_discount
    kind: browse_no_cart
    min_minutes: 3
    cooldown_hours: 24
    holdout: 0.5
  - name: win_back
    kind: inactive
    days: 2
    cooldown_hours: 720
    holdout: 0.5
  - name: third_big_order
    kind: nth_order_over
    n: 3
    revenue: 100
    period: month
  - name: order_burst
    kind: metric_threshold
    metric: orders
    window_minutes: 5
    above: 1
    cooldown_hours: 1
  - name: big_cart_alert
    kind: custom
    model: big_cart
    cooldown_hours: 24
"""
HOLDOUTS = {"browse_discount": 0.5, "win_back": 0.5}


def order(mid, anon, when, revenue, order_id=None):
    return track(
        mid, anon, "Order Completed", when, order_id=order_id or f"o-{mid}", revenue=revenue
    )


# Tenant acme; its clock (latest event) is 2026-11-20 12:00.
ACME = [
    # browse_no_cart (3 minutes of a session, nothing added, session ended within a day):
    page("b1", "dev-browser", at("11:00")),  # fires: 5 minutes, no cart
    page("b2", "dev-browser", at("11:02")),
    page("b3", "dev-browser", at("11:05")),
    page("s1", "dev-short", at("11:00")),  # 1 minute: too short
    page("s2", "dev-short", at("11:01")),
    page("d1", "dev-adder", at("11:00")),  # added to a cart: not browsing without one
    added("d2", "dev-adder", at("11:04")),
    page("d3", "dev-adder", at("11:06")),
    page("x1", "dev-old-browse", at("10:00", "2026-11-18")),  # ended two days ago
    page("x2", "dev-old-browse", at("10:05", "2026-11-18")),
    # inactive (a buyer, last seen 2 to 3 days before the clock):
    order("l1", "dev-lapsed", at("10:00", "2026-11-18"), 150),  # fires; also big order #1
    order("g1", "dev-gone", at("10:00", "2026-11-15"), 50),  # 5 days: long gone
    order("r1", "dev-recent", at("09:00", "2026-11-19"), 200),  # 1 day; big order #2
    page("v1", "dev-lapsed-viewer", at("10:00", "2026-11-18")),  # never bought
    # nth_order_over (the 3rd order of at least 100 this month, by time):
    order("n3", "dev-big", at("10:00"), 120),  # fires: #3
    order("n4", "dev-small", at("10:30"), 99),  # under 100: not counted
    order("n5", "dev-fourth", at("11:00"), 300),  # #4
    # metric_threshold (more than one order in a 5-minute window within the last hour): two
    # orders of 10 at 11:20 and 11:22; the other orders of the hour are 10 minutes apart.
    order("m1", "dev-o1", at("11:20"), 10),
    order("m2", "dev-o2", at("11:22"), 10),
    # custom big_cart (an open cart worth at least 500):
    added("c1", "dev-bigcart", at("11:30"), product="tv", price=600.0),  # fires
    added("c2", "dev-midcart", at("11:30"), product="lamp", price=400.0),
    added("c3", "dev-boughtcart", at("11:05"), product="sofa", price=700.0),  # then bought:
    order("c4", "dev-boughtcart", at("11:10"), 700),  # big order #5, cart closed
    added("c5", "dev-oldcart", at("10:00", "2026-11-18"), product="bed", price=900.0),  # stale
    page("clock", "dev-clock", at("12:00")),
]
# Tenant globex, judged on its own clock and counts: one browser, two big orders only, one
# order in its last hour.
GLOBEX = [
    page("gb1", "dev-gbrowser", at("11:40")),  # fires browse_discount for globex
    page("gb2", "dev-gbrowser", at("11:45")),
    order("go1", "dev-g1", at("10:00"), 500),
    order("go2", "dev-g2", at("11:30"), 200),
    page("gclock", "dev-gclock", at("12:00")),
]
EXPECTED = {
    ("browse_discount", "acme", "dev-browser"),
    ("browse_discount", "globex", "dev-gbrowser"),
    ("win_back", "acme", "dev-lapsed"),
    ("third_big_order", "acme", "dev-big"),
    ("order_burst", "acme", None),
    ("big_cart_alert", "acme", "dev-bigcart"),
}


def firings(settings) -> list[dict]:
    table = DeltaTable(str(settings.trigger_firings_path)).to_pyarrow_table()
    return sorted(table.to_pylist(), key=lambda r: r["firing_id"])


def fired(settings) -> list[tuple]:
    return sorted(
        ((r["trigger"], r["tenant_id"], r["user_id"]) for r in firings(settings)),
        key=str,
    )


@pytest.fixture
def triggers_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "triggers.yml"
    path.write_text(TRIGGERS)
    monkeypatch.setenv("LAKEPULSE_TRIGGERS_FILE", str(path))
    return path


def test_each_kind_fires_exactly_the_expected_users_once(settings, workspace, triggers_file):
    land(settings, ACME, tenant="acme")
    land(settings, GLOBEX, tenant="globex")
    cycle(settings, workspace)
    result = fire(settings)
    assert fired(settings) == sorted(EXPECTED, key=str)  # each once: a list, not a set
    assert result.events_written == len(EXPECTED)

    by_trigger = {(r["trigger"], r["tenant_id"]): r for r in firings(settings)}
    payload = {key: json.loads(row["payload"]) for key, row in by_trigger.items()}
    assert payload[("third_big_order", "acme")]["order_id"] == "o-n3"
    assert payload[("third_big_order", "acme")]["order_number"] == 3
    assert payload[("win_back", "acme")]["orders"] == 1
    assert payload[("order_burst", "acme")]["value"] == 2
    assert payload[("big_cart_alert", "acme")]["cart_value"] == 600
    assert payload[("browse_discount", "acme")]["page_views"] == 3
    # Each user's arm is the documented hash rule's (written out in the test support).
    for row in firings(settings):
        holdout = HOLDOUTS.get(row["trigger"], 0.0)
        if row["user_id"] is not None:
            expected_arm = contract_arm(row["trigger"], row["tenant_id"], row["user_id"], holdout)
            assert row["arm"] == expected_arm, row

    # A second run with nothing new fires nothing.
    again = fire(settings)
    assert sum(len(o.fired) for o in again.outcomes.values()) == 0
    assert again.events_written == 0
    before = firings(settings)

    # The next minute loads the Trigger Fired events back through bronze: still nothing new.
    cycle(settings, workspace)
    fire(settings)
    assert firings(settings) == before

    # A replay (full refresh from bronze) and another run change nothing.
    cycle(settings, workspace, "--full-refresh")
    fire(settings)
    assert firings(settings) == before
    assert workspace.sql("select count(*) from marts.fct_trigger_firings") == [(len(EXPECTED),)]
