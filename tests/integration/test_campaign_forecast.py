"""Campaign forecasts with known truth: hand-written campaigns of two tenants through the
landing log, the loader and dbt. ``mart_campaign_forecast`` holds each campaign's 4-hour and
day-7 revenue as sent, and its interval equals a jackknife+ computed here from those numbers
(written from Barber et al. 2021, not by the code under test); the trigger kind
``campaign_forecast`` fires exactly the running campaigns whose interval's upper end is below
the target, once each, with what moved the forecast in the payload; re-runs, the write-back
and a replay change nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from lakepulse.demo.history import campaign_session
from lakepulse.triggers.firing import fire
from tests.integration.test_trigger_kinds import fired, firings
from tests.integration.test_triggers import cycle, land

pytestmark = pytest.mark.integration

TARGET = 1000
TRIGGERS = f"""
version: 1
triggers:
  - name: campaign_rescue
    kind: campaign_forecast
    below: {TARGET}
    cooldown_hours: 24
"""
CLOCK = datetime.fromisoformat("2026-11-20T12:00:00+00:00")
START = datetime.fromisoformat("2026-10-01T09:00:00+00:00")
# Ten ended campaigns of acme, launched every 2 days from START: (4-hour revenue, day-7 revenue).
ENDED = [
    (100, 800),
    (200, 2500),
    (150, 1350),
    (300, 3300),
    (50, 500),
    (120, 1020),
    (250, 2875),
    (80, 760),
    (400, 4200),
    (60, 720),
]
# Running campaigns of acme: (name, hours since launch, 4-hour revenue, later revenue so far).
RUNNING = [
    ("weak", 30, 20, 40),  # forecast far below the target: fires
    ("weak_too", 8, 25, 0),  # fires too: its own campaign, not cooled down by weak's firing
    ("strong", 26, 300, 500),  # forecast above the target
    ("young", 2, 5, 0),  # under 4 hours: no forecast yet
]


def campaign(
    name: str, launched: datetime, revenue_4h: float, later: float | None, clock=CLOCK
) -> list:
    """Launch at ``launched`` with a 4-hour order, and (``later``) an order 3 days on, or
    30 minutes after the 4 hours for a campaign that has not run 3 days by ``clock``."""
    messages = campaign_session(f"{name}-a", launched, name, revenue_4h)
    if later:
        after = launched + timedelta(days=3)
        if after > clock:
            after = launched + timedelta(hours=4, minutes=30)
        messages += campaign_session(f"{name}-b", after, name, later)
    # an order 8 days on: after its day 7, never counted
    if launched + timedelta(days=8) < clock:
        messages += campaign_session(f"{name}-c", launched + timedelta(days=8), name, 999)
    return messages


def clock_event(tenant: str) -> list:
    return [
        {
            "type": "page",
            "name": "Home",
            "messageId": f"clock-{tenant}",
            "anonymousId": "dev-clock",
            "timestamp": CLOCK.isoformat(),
            "properties": {"path": "/"},
        }
    ]


def acme() -> list:
    messages = []
    for k, (r4, r7) in enumerate(ENDED):
        messages += campaign(f"past{k}", START + timedelta(days=2 * k), r4, r7 - r4)
    for name, hours, r4, later in RUNNING:
        messages += campaign(name, CLOCK - timedelta(hours=hours), r4, later)
    return messages + clock_event("acme")


def globex() -> list:
    """Three ended campaigns and a weak running one: too few to forecast, so nothing fires."""
    messages = []
    for k, (r4, r7) in enumerate(ENDED[:3]):
        messages += campaign(f"g{k}", START + timedelta(days=2 * k), r4, r7 - r4)
    return messages + campaign("gweak", CLOCK - timedelta(hours=30), 1, 1) + clock_event("globex")


def jackknife_plus(x: np.ndarray, y: np.ndarray, x_new: float, level: float = 0.8):
    """Barber, Candes, Ramdas & Tibshirani (2021), jackknife+: for each i, the regression
    without i gives a residual R_i at i and a prediction mu_-i(x_new); the interval runs from
    the floor(alpha (n+1))-th smallest mu_-i - R_i to the ceil((1-alpha)(n+1))-th smallest
    mu_-i + R_i. Here on log1p of both, a straight line."""
    n, alpha = len(x), 1 - level
    lows, highs = [], []
    for i in range(n):
        keep = np.arange(n) != i
        slope, intercept = np.polyfit(x[keep], y[keep], 1)
        residual = abs(y[i] - (intercept + slope * x[i]))
        mu = intercept + slope * x_new
        lows.append(mu - residual)
        highs.append(mu + residual)
    slope, intercept = np.polyfit(x, y, 1)
    low = sorted(lows)[int(np.floor(alpha * (n + 1))) - 1]
    high = sorted(highs)[int(np.ceil((1 - alpha) * (n + 1))) - 1]
    return np.expm1(intercept + slope * x_new), max(np.expm1(low), 0), np.expm1(high)


PAST_X = np.log1p([r4 for r4, _ in ENDED])
PAST_Y = np.log1p([r7 for _, r7 in ENDED])


@pytest.fixture
def triggers_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "triggers.yml"
    path.write_text(TRIGGERS)
    monkeypatch.setenv("LAKEPULSE_TRIGGERS_FILE", str(path))
    return path


def test_forecasts_and_the_trigger_match_known_truth(settings, workspace, triggers_file):
    land(settings, acme(), tenant="acme")
    land(settings, globex(), tenant="globex")
    cycle(settings, workspace)
    rows = workspace.warehouse_sql(
        "select tenant_id, campaign, status, revenue_4h, revenue_to_date, actual_revenue_7d, "
        "training_campaigns, forecast_revenue_7d, forecast_low, forecast_high, within_interval, "
        "note from marts.mart_campaign_forecast order by all"
    )
    mart = {(r[0], r[1]): r[2:] for r in rows}
    assert len(mart) == len(ENDED) + len(RUNNING) + 4

    # Ended campaigns: revenue as sent (the order after day 7 not counted). Campaign k ended on
    # day 2k + 7, when campaigns 0 .. k were over: 8 others needed, so from campaign 8 on.
    for k, (r4, r7) in enumerate(ENDED):
        status, rev4, to_date, actual, training, point, low, high, within, note = mart[
            ("acme", f"past{k}")
        ]
        assert (status, rev4, to_date, actual, training) == ("ended", r4, r7, r7, k), k
        if k < 8:
            assert point is None and "needs 8" in note
            continue
        _, want_low, want_high = jackknife_plus(PAST_X[:k], PAST_Y[:k], np.log1p(r4))
        assert (low, high) == (pytest.approx(want_low), pytest.approx(want_high)), k
        assert within == (want_low <= r7 <= want_high)

    # Running campaigns: forecast from all ten ended ones.
    expected_fired = set()
    for name, _hours, r4, later in RUNNING:
        status, rev4, to_date, actual, training, point, low, high, _, note = mart[("acme", name)]
        assert (rev4, to_date, actual) == (r4, r4 + (later or 0), None)
        if name == "young":
            assert status == "first_hours" and high is None and "4 hours" in note
            continue
        want = jackknife_plus(PAST_X, PAST_Y, np.log1p(r4))
        assert (status, training) == ("running", 10)
        assert (point, low, high) == tuple(pytest.approx(v) for v in want)
        if want[2] < TARGET:
            expected_fired.add(("campaign_rescue", "acme", None, name))
    assert {name for *_, name in expected_fired} == {"weak", "weak_too"}  # the data's design
    assert mart[("globex", "gweak")][0] == "running"
    assert "3 of the tenant's campaigns" in mart[("globex", "gweak")][-1]

    result = fire(settings)
    got = {(r["trigger"], r["tenant_id"], r["user_id"]) for r in firings(settings)}
    keys = {
        (r["trigger"], r["tenant_id"], r["user_id"], json.loads(r["payload"])["campaign"])
        for r in firings(settings)
    }
    assert keys == expected_fired
    assert len(fired(settings)) == 2 and got == {("campaign_rescue", "acme", None)}
    assert result.events_written == 2

    payload = {
        json.loads(r["payload"])["campaign"]: json.loads(r["payload"]) for r in firings(settings)
    }
    weak = payload["weak"]
    want = jackknife_plus(PAST_X, PAST_Y, np.log1p(20))
    assert weak["forecast_high"] == pytest.approx(want[2]) and weak["below"] == TARGET
    assert weak["drivers"]["revenue_4h"]["value"] == 20
    typical = np.expm1(PAST_X.mean())
    assert weak["drivers"]["revenue_4h"]["typical"] == pytest.approx(typical)
    slope = np.polyfit(PAST_X, PAST_Y, 1)[0]
    assert weak["drivers"]["revenue_4h"]["effect"] == pytest.approx(
        np.exp(slope * (np.log1p(20) - PAST_X.mean()))
    )
    assert weak["main_driver"].startswith("revenue_4h 20 against")
    assert "below the target 1000" in weak["message"]

    # Exactly once: again, after the write-back through bronze, and after a replay.
    again = fire(settings)
    assert sum(len(o.fired) for o in again.outcomes.values()) == 0
    before = firings(settings)
    cycle(settings, workspace)
    fire(settings)
    assert firings(settings) == before
    cycle(settings, workspace, "--full-refresh")
    fire(settings)
    assert firings(settings) == before
