"""The traffic simulator: reproducible, realistic, and faulty on demand."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise

import pytest

from ingestion.contract import ContractError, normalize
from lakepulse.demo.simulator import Faults, SimConfig, TrafficGenerator

CLOCK = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KEYS = {"acme": "k1", "globex": "k2"}


def take(n: int, **config) -> list[tuple[str, str, dict]]:
    return list(
        islice(TrafficGenerator(SimConfig(tenants=KEYS, **config), clock=CLOCK).events(), n)
    )


def test_same_seed_same_events():
    assert take(500, seed=3) == take(500, seed=3)
    assert take(50, seed=3) != take(50, seed=4)


def test_traffic_has_the_commerce_funnel_channels_and_experiments():
    events = take(5000)
    names = Counter(m.get("event") for _, _, m in events)
    assert (
        names["Product Viewed"]
        > names["Product Added"]
        > names["Checkout Started"]
        > names["Order Completed"]
        > 0
    )
    assert names["Experiment Viewed"] > 0
    assert {t for t, _, _ in events} == set(KEYS)
    mediums = {m["context"].get("campaign", {}).get("medium") for _, _, m in events}
    assert {"email", "cpc"} <= mediums
    assert any(m["type"] == "identify" for _, _, m in events)
    # Returning visitors come back with the same anonymousId.
    visits = Counter(m["anonymousId"] for _, _, m in events if m["type"] == "page")
    assert max(visits.values()) > 1


def test_every_generated_event_satisfies_the_contract():
    for tenant, _, message in take(2000):
        normalize(message, tenant_id=tenant, secret=b"s", received_at=CLOCK)


def test_duplicates_repeat_message_ids():
    events = take(2000, faults=Faults(duplicate_rate=0.1))
    ids = Counter(m["messageId"] for _, _, m in events)
    assert 100 < sum(1 for c in ids.values() if c > 1) < 300


def test_malformed_events_are_rejected_by_the_contract():
    rejected = 0
    for tenant, _, message in take(2000, faults=Faults(malformed_rate=0.05)):
        message = {k: v for k, v in message.items() if k != "_clock_skew_s"}
        try:
            normalize(message, tenant_id=tenant, secret=b"s", received_at=CLOCK)
        except ContractError:
            rejected += 1
    assert 50 < rejected < 150


def test_late_events_arrive_after_later_ones():
    events = take(6000, faults=Faults(late_rate=0.05))
    stamps = [datetime.fromisoformat(m["timestamp"]) for _, _, m in events]
    inversions = sum(1 for a, b in pairwise(stamps) if (a - b).total_seconds() > 100)
    assert inversions > 0


def test_skewed_devices_are_marked_for_the_sender():
    events = take(1000, faults=Faults(skew_rate=0.5, skew_seconds=3600))
    skewed = [m for _, _, m in events if m.get("_clock_skew_s")]
    assert skewed and all(abs(m["_clock_skew_s"]) == 3600 for m in skewed)


@pytest.mark.parametrize("factor", [0.0])
def test_conversion_drop_after_n_visits(factor):
    gen = TrafficGenerator(
        SimConfig(
            tenants=KEYS, faults=Faults(conversion_drop_after=400, conversion_drop_factor=factor)
        ),
        clock=CLOCK,
    )
    before = after = 0
    for i, visit in enumerate(islice(gen.visits(), 800)):
        orders = sum(1 for _, _, m in visit if m.get("event") == "Order Completed")
        if i < 400:
            before += orders
        else:
            after += orders
    assert before > 10 and after == 0


def test_trigger_personas_bounce_and_browse_without_a_cart():
    """Shoppers the triggers react to: bouncers (one page view), browsers (many products
    viewed over minutes, nothing added); off by default, so seeded traffic is unchanged."""

    def visits(**shares):
        gen = TrafficGenerator(SimConfig(seed=3, tenants={"acme": "k"}, **shares))
        return [[m for _, _, m in visit] for visit in islice(gen.visits(), 400)]

    plain = visits()
    assert all(len(v) >= 2 for v in plain)  # every default visit views a product
    mixed = visits(bounce_share=0.2, browse_share=0.2)
    bounces = [v for v in mixed if len(v) == 1 and v[0]["type"] == "page"]
    browses = [
        v
        for v in mixed
        if sum(m.get("event") == "Product Viewed" for m in v) >= 6
        and not any(m.get("event") == "Product Added" for m in v)
    ]
    assert 0.12 < len(bounces) / len(mixed) < 0.28
    assert 0.12 < len(browses) / len(mixed) < 0.28
    spans = [
        datetime.fromisoformat(v[-1]["timestamp"]) - datetime.fromisoformat(v[0]["timestamp"])
        for v in browses
    ]
    assert sorted(spans)[len(spans) // 2] >= timedelta(minutes=2)
    assert max(spans) >= timedelta(minutes=3)
