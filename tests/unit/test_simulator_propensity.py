"""The simulator's `known_propensity` mode: every visit's order is drawn with the probability
it records, and that probability is the documented function of what the visit shows."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from lakepulse.demo.simulator import Faults, SimConfig, TrafficGenerator, buying_probability


def visits(n: int):
    config = SimConfig(
        seed=3, tenants={"shop": "k"}, faults=Faults(), known_propensity=True, experiments=[]
    )
    generator = TrafficGenerator(config, clock=datetime(2026, 6, 1, tzinfo=UTC))
    stream = generator.visits()
    return generator, [next(stream) for _ in range(n)]


def test_orders_follow_the_recorded_probabilities():
    generator, drawn = visits(4000)
    assert len(generator.truth) == 4000
    ordered = [any(m.get("event") == "Order Completed" for _, _, m in v) for v in drawn]
    probabilities = [generator.truth[v[0][2]["messageId"]] for v in drawn]
    expected = sum(probabilities)
    spread = math.sqrt(sum(p * (1 - p) for p in probabilities))
    assert abs(sum(ordered) - expected) < 4 * spread, (sum(ordered), expected)
    # Visits that ordered had been given higher probabilities than those that did not.
    bought = [p for p, o in zip(probabilities, ordered, strict=True) if o]
    passed = [p for p, o in zip(probabilities, ordered, strict=True) if not o]
    assert sum(bought) / len(bought) > sum(passed) / len(passed) + 0.05


def test_the_probability_is_the_function_of_what_the_visit_shows():
    generator, drawn = visits(300)
    for visit in drawn:
        messages = [m for _, _, m in visit]
        views = sum(m.get("event") == "Product Viewed" for m in messages)
        added = [m["properties"] for m in messages if m.get("event") == "Product Added"]
        value = sum(a["price"] * a["quantity"] for a in added)
        first = messages[0]
        channel = "email" if "utm_medium=email" in first["context"]["page"]["url"] else None
        if channel is None:
            continue  # the channel's rules live in dbt; email is the one read off the URL here
        device = next(d for d in ("iPad", "iPhone", "X11") if d in first["context"]["userAgent"])
        device = {"iPad": "tablet", "iPhone": "mobile", "X11": "desktop"}[device]
        truth = generator.truth[first["messageId"]]
        assert truth in (
            buying_probability(views, len(added), value, returning, channel, device)
            for returning in (False, True)
        )


def test_off_by_default():
    assert SimConfig().known_propensity is False
