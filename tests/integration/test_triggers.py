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

from ingestion.landing import LandingLog
from lakepulse.core.settings import PROJECT_ROOT, Settings
from lakepulse.demo import history
from lakepulse.triggers.definitions import install
from lakepulse.triggers.firing import fire
from tests.conftest import landing_rows

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
    message = {
        "type": "track",
        "event": name,
        "messageId": mid,
        "anonymousId": anon,
        "timestamp": when,
        "properties": props,
    }
    if user:
        message["userId"] = user
    return message


def page(mid: str, anon: str, when: str) -> dict:
    return {
        "type": "page",
        "name": "Home",
        "messageId": mid,
        "anonymousId": anon,
        "timestamp": when,
        "properties": {"path": "/"},
    }


def identify(mid: str, anon: str, user: str, when: str) -> dict:
    return {
        "type": "identify",
        "messageId": mid,
        "anonymousId": anon,
        "userId": user,
        "timestamp": when,
    }


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
    # a repeat abandoner: reminded for this cart; their next cart (below) is in the cooldown
    added("k1", "dev-k", at("08:00")),
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
    ),
    track("k2", "dev-k", "Order Completed", at("10:50"), order_id="ok", revenue=1.0),
    added("k3", "dev-k", at("11:00")),
]


def land(settings: Settings, messages: list[dict], tenant: str = "acme") -> None:
    """``messages`` as one landing file, received at their timestamps."""
    history.land(settings, tenant, messages)


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


def cycle(settings, workspace, *build_args: str) -> None:
    """One minute of the pipeline: load, build (definitions installed first). Only the
    trigger models and what they read are built, to keep the test short."""
    install(settings)
    workspace.ingest()
    workspace.build(*build_args, "--select", "+path:models/triggers", "fct_trigger_firings")


def landed_trigger_events(settings: Settings) -> list[str]:
    """messageIds of the Trigger Fired events in the landing log (copies included)."""
    return sorted(
        row["message_id"]
        for f in LandingLog(settings.landing_dir).files("events")
        for row in landing_rows(f.path)
        if row["event"] == "Trigger Fired"
    )


def trigger_events(workspace) -> list[tuple]:
    return workspace.warehouse_sql(
        "select message_id, user_id, anonymous_id, properties->>'trigger', properties->>'arm' "
        "from staging.stg_events where event_name = 'Trigger Fired' order by 1"
    )


def test_known_traffic_fires_exactly_the_expected_users_once(settings, workspace, triggers_file):
    land(settings, FIRST + LATE)
    cycle(settings, workspace)
    result = fire(settings)
    expected = {
        ("cart_reminder", "u_abandoner"),
        ("cart_reminder", "dev-k"),
        ("welcome_letter", "u_abandoner"),
        ("why_did_you_leave", "dev-bounce"),
    }
    assert fired(settings) == expected
    assert result.events_written == 4
    # A second run with nothing new fires nothing and writes nothing.
    again = fire(settings)
    assert sum(len(o.fired) for o in again.outcomes.values()) == 0
    assert again.outcomes["cart_reminder"].already_recorded == 2
    assert again.events_written == 0 and len(firings(settings)) == 4

    # The clock moves on: the fresh cart is abandoned now; the abandoner bought after the
    # reminder, which stays recorded; dev-k's next cart is inside their 24 h cooldown.
    land(settings, SECOND)
    cycle(settings, workspace)
    # The first firings' events went back through the landing log into bronze, one each.
    by_id = {r["firing_id"]: r for r in firings(settings)}
    events = trigger_events(workspace)
    assert [e[0] for e in events] == sorted(by_id)
    for message_id, user_id, anonymous_id, trigger, arm in events:
        assert trigger == by_id[message_id]["trigger"] and arm == by_id[message_id]["arm"]
        assert (user_id or anonymous_id) == by_id[message_id]["user_id"]
    # ... and a Trigger Fired event is no visit: the bouncer's session is still one page.
    assert workspace.warehouse_sql(
        "select page_views, events from intermediate.int_sessions where device_id = 'dev-bounce'"
    ) == [(1, 1)]
    result = fire(settings)
    assert result.outcomes["cart_reminder"].cooling_down == 1
    assert fired(settings) == expected | {("cart_reminder", "dev-fresh")}
    reminder = next(r for r in firings(settings) if r["user_id"] == "dev-fresh")
    assert json.loads(reminder["payload"])["cart_products"] == ["p1"]
    assert json.loads(reminder["destinations"]) == ["crm"]

    # A replay (full refresh from bronze, trigger events included) and another run change
    # nothing; the mart holds every firing once.
    before = firings(settings)
    cycle(settings, workspace, "--full-refresh")
    assert workspace.sql("select count(*) from marts.fct_trigger_firings") == [(5,)]
    assert len(trigger_events(workspace)) == 5
    fire(settings)
    assert firings(settings) == before


def test_a_kill_after_recording_loses_nothing_and_a_bad_file_leaves_the_previous_running(
    settings, workspace, triggers_file
):
    land(settings, FIRST + LATE)
    cycle(settings, workspace)
    env = settings.process_env() | {
        "LAKEPULSE_TRIGGERS_FILE": str(triggers_file),
        "LAKEPULSE_FAULT_PAUSE_AFTER_RECORD": "60",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "lakepulse.cli", "triggers", "fire"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in proc.stdout:
            if line.startswith("paused: LAKEPULSE_FAULT_PAUSE_AFTER_RECORD"):
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # SIGKILLed between the record and the event write: recorded, not written back.
    recorded = sorted(r["firing_id"] for r in firings(settings))
    assert len(recorded) == 4 and landed_trigger_events(settings) == []

    # Meanwhile someone breaks triggers.yml: it is refused with its message...
    triggers_file.write_text(TRIGGERS.replace("after_minutes: 30", "after_minutes: soon"))
    result = subprocess.run(
        [sys.executable, "-m", "lakepulse.cli", "triggers", "validate"],
        env=settings.process_env() | {"LAKEPULSE_TRIGGERS_FILE": str(triggers_file)},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert f"{triggers_file}: trigger 'cart_reminder': field 'after_minutes'" in result.stderr
    assert "previous valid definitions (3 trigger(s)) keep running" in result.stderr

    # ... and the next run, on the previous definitions, writes the four back and records
    # nothing new; bronze holds each event once.
    outcome = fire(settings)
    assert outcome.refused and "after_minutes" in outcome.refused
    assert outcome.recovered == 4 and outcome.recorded == 0
    assert outcome.outcomes["cart_reminder"].already_recorded == 2
    assert landed_trigger_events(settings) == recorded
    cycle(settings, workspace)
    assert sorted(r["firing_id"] for r in firings(settings)) == recorded
    assert [e[0] for e in trigger_events(workspace)] == recorded
