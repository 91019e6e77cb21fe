"""Triggers with known truth: hand-built traffic with abandoners, buyers, late buyers, fresh
and old carts fires exactly the expected users, once; a second run, a replay and a killed
fire run change nothing; a bad triggers.yml is refused and the previous definitions keep
running."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from ingestion.contract import normalize
from ingestion.landing import LandingLog
from lakepulse.config import PROJECT_ROOT, Settings
from lakepulse.triggers.definitions import install
from lakepulse.triggers.firing import fire

pytestmark = pytest.mark.integration

TRIGGERS = """
version: 1
destinations:
  crm: {type: webhook, url: "${CRM_WEBHOOK_URL}"}
triggers:
  - name: cart_reminder
    kind: abandoned_cart
    after_minutes: 30
    max_age_hours: 24
    cooldown_hours: 24
    holdout: 0.5
    destinations: [crm]
  - name: welcome_letter
    kind: welcome
    cooldown_hours: 0
  - name: why_did_you_leave
    kind: bounced_visit
    max_seconds: 10
    tenants: [acme]
"""


def at(hhmm: str, day: str = "2026-11-20") -> str:
    return f"{day}T{hhmm}:00+00:00"


def track(mid: str, anon: str, name: str, when: str, user: str | None = None, **props) -> dict:
    message = {"type": "track", "event": name, "messageId": mid, "anonymousId": anon,
               "timestamp": when, "properties": props}  # fmt: skip
    if user:
        message["userId"] = user
    return message


def page(mid: str, anon: str, when: str) -> dict:
    return {"type": "page", "name": "Home", "messageId": mid, "anonymousId": anon,
            "timestamp": when, "properties": {"path": "/"}}  # fmt: skip


def identify(mid: str, anon: str, user: str, when: str) -> dict:
    return {"type": "identify", "messageId": mid, "anonymousId": anon, "userId": user,
            "timestamp": when}  # fmt: skip


def added(mid, anon, when, product="p1", price=20.0):
    return track(mid, anon, "Product Added", when, product_id=product, price=price, quantity=1)


# Increment 1: the tenant's clock reaches 11:30 (the clock device's page view).
FIRST = [
    # abandoner: signs in, adds to cart at 10:00, looks at the cart at 10:05, never buys
    identify("a0", "dev-ab", "u_abandoner", at("09:58")),
    added("a1", "dev-ab", at("10:00")),
    track("a2", "dev-ab", "Cart Viewed", at("10:05")),
    # buyer: adds and buys
    added("b1", "dev-buy", at("10:00")),
    track("b2", "dev-buy", "Order Completed", at("10:10"), order_id="o1", revenue=20.0),
    # late buyer: adds at 10:00; the order (10:20) arrives late, in this same load
    added("l1", "dev-late", at("10:00")),
    # fresh cart: added at 11:20, not 30 minutes before the clock yet
    added("f1", "dev-fresh", at("11:20")),
    # an old cart: last touched two days ago, beyond max_age_hours
    added("o1", "dev-old", at("10:00", "2026-11-18")),
    # a bouncer: one page view at 10:30, then gone
    page("x1", "dev-bounce", at("10:30")),
    # the clock
    page("c1", "dev-clock", at("11:30")),
]
LATE = [track("l2", "dev-late", "Order Completed", at("10:20"), order_id="o2", revenue=20.0)]
# Increment 2: the clock moves to 12:00; the fresh cart is now abandoned; the abandoner buys
# after their reminder (it stays recorded).
SECOND = [
    page("c2", "dev-clock", at("12:00")),
    track(
        "a3", "dev-ab", "Order Completed", at("11:59"), "u_abandoner", order_id="o3", revenue=20.0
    ),  # fmt: skip
]


def land(settings: Settings, messages: list[dict], tenant: str = "acme") -> None:
    from datetime import datetime

    rows = [
        normalize(
            m, tenant_id=tenant, secret=b"s", received_at=datetime.fromisoformat(m["timestamp"])
        )  # fmt: skip
        for m in messages
    ]
    LandingLog(settings.landing_dir).write(tenant, "events", rows)


def firings(settings: Settings) -> list[dict]:
    table = DeltaTable(str(settings.trigger_firings_path)).to_pyarrow_table()
    return sorted(table.to_pylist(), key=lambda r: (r["trigger"], r["user_id"] or ""))


def fired(settings: Settings) -> set[tuple[str, str]]:
    return {(r["trigger"], r["user_id"]) for r in firings(settings)}


@pytest.fixture
def triggers_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "triggers.yml"
    path.write_text(TRIGGERS)
    monkeypatch.setenv("LAKEPULSE_TRIGGERS_FILE", str(path))
    return path


def cycle(settings, workspace) -> None:
    """One minute of the pipeline: load, build (definitions installed first), fire."""
    install(settings)
    workspace.ingest()
    workspace.build()


def trigger_events(workspace) -> list[tuple]:
    return workspace.warehouse_sql(
        "select message_id, user_id, anonymous_id, properties->>'trigger', properties->>'arm' "
        "from staging.stg_events where event_name = 'Trigger Fired' order by 1"
    )


def test_known_traffic_fires_exactly_the_expected_users_once(settings, workspace, triggers_file):
    land(settings, FIRST + LATE)
    cycle(settings, workspace)
    result = fire(settings)
    assert fired(settings) == {
        ("cart_reminder", "u_abandoner"),
        ("welcome_letter", "u_abandoner"),
        ("why_did_you_leave", "dev-bounce"),
    }
    assert result.events_written == 3
    # A second run with nothing new fires nothing and writes nothing.
    again = fire(settings)
    assert sum(len(o.fired) for o in again.outcomes.values()) == 0
    assert again.outcomes["cart_reminder"].already_recorded == 1
    assert len(firings(settings)) == 3

    # The events went back through the landing log into bronze, one per firing.
    cycle(settings, workspace)
    events = trigger_events(workspace)
    assert [e[0] for e in events] == sorted(r["firing_id"] for r in firings(settings))
    by_id = {r["firing_id"]: r for r in firings(settings)}
    for message_id, user_id, anonymous_id, trigger, arm in events:
        assert trigger == by_id[message_id]["trigger"] and arm == by_id[message_id]["arm"]
        assert (user_id or anonymous_id) == by_id[message_id]["user_id"]
    # ... and a Trigger Fired event is no visit: the bouncer's session is still one page.
    assert workspace.warehouse_sql(
        "select count(*) from marts.fct_sessions where device_id = 'dev-bounce'"
    ) == [(1,)]

    # The clock moves on: the fresh cart is abandoned now; the abandoner bought after the
    # reminder, which stays recorded; nothing fires twice.
    land(settings, SECOND)
    cycle(settings, workspace)
    fire(settings)
    assert fired(settings) == {
        ("cart_reminder", "u_abandoner"),
        ("cart_reminder", "dev-fresh"),
        ("welcome_letter", "u_abandoner"),
        ("why_did_you_leave", "dev-bounce"),
    }
    assert len(firings(settings)) == 4
    reminder = next(r for r in firings(settings) if r["user_id"] == "dev-fresh")
    assert json.loads(reminder["payload"])["cart_products"] == ["p1"]
    assert json.loads(reminder["destinations"]) == ["crm"]

    # A replay (full refresh from bronze) and another run change nothing.
    before = firings(settings)
    install(settings)
    workspace.build("--full-refresh")
    fire(settings)
    assert firings(settings) == before
    cycle(settings, workspace)
    assert workspace.sql("select count(*) from marts.fct_trigger_firings") == [(4,)]
    assert len(trigger_events(workspace)) == 4


def test_cooldown_holds_across_runs(settings, workspace, triggers_file):
    """Two carts of one user 2 hours apart: the second is inside the 24 h cooldown of the
    first reminder, recorded in an earlier run."""
    land(settings, [added("k1", "dev-k", at("08:00")), page("c1", "dev-clock", at("09:00"))])
    cycle(settings, workspace)
    assert fire(settings).outcomes["cart_reminder"].fired
    land(settings, [
        track("k2", "dev-k", "Order Completed", at("09:10"), order_id="ok", revenue=1.0),
        added("k3", "dev-k", at("10:00")),
        page("c2", "dev-clock", at("11:00")),
    ])  # fmt: skip
    cycle(settings, workspace)
    outcome = fire(settings).outcomes["cart_reminder"]
    assert outcome.fired == [] and outcome.cooling_down == 1
    assert [r["user_id"] for r in firings(settings) if r["trigger"] == "cart_reminder"] == ["dev-k"]


def test_kill_between_record_and_event_write_loses_and_duplicates_nothing(
    settings, workspace, triggers_file, tmp_path
):
    land(settings, FIRST + LATE)
    cycle(settings, workspace)
    env = settings.process_env() | {
        "LAKEPULSE_TRIGGERS_FILE": str(triggers_file),
        "LAKEPULSE_FAULT_PAUSE_AFTER_RECORD": "60",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "lakepulse.cli", "triggers", "fire"],
        env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        for line in proc.stdout:
            if line.startswith("paused: LAKEPULSE_FAULT_PAUSE_AFTER_RECORD"):
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Recorded, not written back: no Trigger Fired event in the landing log yet.
    assert len(firings(settings)) == 3
    cycle(settings, workspace)
    assert trigger_events(workspace) == []
    # The next run writes the three back and records nothing new.
    result = fire(settings)
    assert result.recovered == 3 and result.recorded == 0
    cycle(settings, workspace)
    assert len(firings(settings)) == 3
    assert sorted(e[0] for e in trigger_events(workspace)) == sorted(
        r["firing_id"] for r in firings(settings)
    )


def test_bad_triggers_file_is_refused_and_the_previous_definitions_keep_running(
    settings, workspace, triggers_file
):
    land(settings, FIRST + LATE)
    cycle(settings, workspace)
    triggers_file.write_text(TRIGGERS.replace("after_minutes: 30", "after_minutes: soon"))
    result = subprocess.run(
        [sys.executable, "-m", "lakepulse.cli", "triggers", "validate"],
        env=settings.process_env() | {"LAKEPULSE_TRIGGERS_FILE": str(triggers_file)},
        cwd=PROJECT_ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"{triggers_file}: trigger 'cart_reminder': field 'after_minutes'" in result.stderr
    assert "previous valid definitions (3 trigger(s)) keep running" in result.stderr
    outcome = fire(settings)
    assert outcome.refused and "after_minutes" in outcome.refused
    assert ("cart_reminder", "u_abandoner") in fired(settings)
