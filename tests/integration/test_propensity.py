"""Purchase propensity through the real pipeline: visits with known buying probabilities written
to the landing log, loaded, modelled by dbt (int_session_features), fitted by `lakepulse
predict`'s workflow, scored in mart_visitor_propensity. The generator below is independent of
lakepulse.analytics.propensity: every expected figure is counted from what it sent."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ingestion.contract import normalize
from ingestion.landing import LandingLog
from lakepulse.core.settings import PROJECT_ROOT
from lakepulse.operations.predict import fit_propensity

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 10
VISITORS = 3000
SEED = 4242


def simulate(settings, tenant: str = "shop", hold_from: datetime | None = None) -> dict:
    """Each visitor comes back every 2-5 days. A visit: a page view, Poisson(3) product views,
    each added to the cart with probability 0.2 (price Gamma(2, 20), quantity 1-2), and with a
    probability known here an `Order Completed` before it ends. Visits are at least 2 days
    apart, so a visit's 24 hours hold only its own order. Events from ``hold_from`` on are
    not written but returned (``later``), to be landed by a second load."""
    rng = np.random.default_rng(SEED)
    log = LandingLog(settings.landing_dir)
    rows: list[dict] = []
    later: list[dict] = []
    visits = []

    def emit(user: str, at: datetime, kind: str, **fields) -> None:
        message = {
            "type": kind,
            "userId": user,
            "messageId": str(uuid.uuid4()),
            "timestamp": at.isoformat(),
            **fields,
        }
        row = normalize(message, tenant_id=tenant, secret=b"s", received_at=at)
        (later if hold_from is not None and at >= hold_from else rows).append(row)

    for index in range(VISITORS):
        user = f"v{index:05d}"
        at = START + timedelta(days=rng.uniform(0, 3))
        sessions = orders = 0
        while at < START + timedelta(days=DAYS):
            views = int(rng.poisson(3.0))
            added = [
                (round(float(rng.gamma(2.0, 20.0)), 2), int(rng.integers(1, 3)))
                for _ in range(views)
                if rng.random() < 0.2
            ]
            cart_value = sum(price * quantity for price, quantity in added)
            logit = (
                -3.5
                + 1.5 * bool(added)
                + 0.5 * np.log1p(cart_value / 50.0)
                + 0.3 * np.sqrt(views)
                + 0.6 * (sessions > 0)
                + 0.3 * min(orders, 3)
            )
            truth = 1 / (1 + np.exp(-logit))
            ordered = rng.random() < truth
            clock = at
            emit(user, clock, "page", properties={"path": "/"})
            for number in range(views):
                clock += timedelta(minutes=1)
                emit(
                    user,
                    clock,
                    "track",
                    event="Product Viewed",
                    properties={"product_id": f"p{number}"},
                )
            for number, (price, quantity) in enumerate(added):
                clock += timedelta(minutes=1)
                emit(
                    user,
                    clock,
                    "track",
                    event="Product Added",
                    properties={"product_id": f"p{number}", "price": price, "quantity": quantity},
                )
            if ordered:
                clock += timedelta(minutes=2)
                emit(
                    user,
                    clock,
                    "track",
                    event="Order Completed",
                    properties={"order_id": str(uuid.uuid4()), "revenue": cart_value or 10.0},
                )
            visits.append(
                {
                    "user": user,
                    "start": at,
                    "views": views,
                    "adds": len(added),
                    "cart_value": cart_value,
                    "returning": int(sessions > 0),
                    "past_orders": orders,
                    "ordered": int(ordered),
                    "truth": truth,
                    "end": clock,
                }
            )
            sessions += 1
            orders += int(ordered)
            at += timedelta(days=rng.uniform(2, 5))
        if len(rows) > 5000:
            log.write(tenant, "events", rows)
            rows.clear()
    # Live visits in the last 30 minutes, visits 5 and 50 hours before the end (in and out of
    # the scored day; the latter before the held-out day), then the tenant's clock.
    end = START + timedelta(days=DAYS + 1)
    for index in range(20):
        emit(f"live{index:02d}", end - timedelta(minutes=20), "page", properties={"path": "/"})
    for index in range(10):
        emit(f"today{index:02d}", end - timedelta(hours=5), "page", properties={"path": "/"})
        emit(f"earlier{index:02d}", end - timedelta(hours=50), "page", properties={"path": "/"})
    emit("clock", end, "page", properties={"path": "/"})
    log.write(tenant, "events", rows)
    return {"visits": visits, "now": end, "later": later}


def test_propensity_is_learnt_from_sessions_and_scores_the_live_ones(settings, workspace):
    # Two loads: the features built incrementally (visitors coming back, orders after the
    # first load, visits cut by it) equal a full rebuild's.
    sent = simulate(settings, hold_from=START + timedelta(days=6, hours=12))
    workspace.ingest()
    workspace.build("--select", "+int_session_features", "+int_session_clocks")
    LandingLog(settings.landing_dir).write("shop", "events", sent["later"])
    workspace.ingest()
    workspace.build("--select", "+int_session_features", "+int_session_clocks")
    query = "select * exclude (last_loaded_at) from intermediate.int_session_features order by 2"
    incremental = workspace.warehouse_sql(query)
    workspace.build("--full-refresh", "--select", "int_session_features")
    assert workspace.warehouse_sql(query) == incremental

    # The features, as sent.
    by_start = {(v["user"], v["start"].replace(microsecond=0)): v for v in sent["visits"]}
    features = workspace.warehouse_sql(
        "select user_key, session_start_at, product_views, cart_adds, cart_value, returning_visitor, "
        "past_orders from intermediate.int_session_features where user_key like 'v%'"
    )
    assert len(features) == len(sent["visits"])
    for user, start, views, adds, value, returning, past in features[:2000]:
        visit = by_start[(user, start.astimezone(UTC).replace(microsecond=0))]
        assert (views, adds, returning, past) == (
            visit["views"],
            visit["adds"],
            visit["returning"],
            visit["past_orders"],
        )
        assert value == pytest.approx(visit["cart_value"])

    [result] = fit_propensity(settings)
    assert result.error is None, result.error
    accuracy = result.accuracy
    # Labelled: visits whose 24 hours are over by the clock; held out: the last labelled day.
    now = sent["now"]
    labelled = [v for v in sent["visits"] if v["start"] + timedelta(hours=24) <= now]
    last = max(v["start"] for v in labelled)
    holdout = [v for v in labelled if v["start"] > last - timedelta(days=1)]
    assert accuracy.holdout_sessions == len(holdout) + 0  # the live visitors start after `last`
    assert accuracy.holdout_orders == sum(v["ordered"] for v in holdout)
    best = roc_auc_score([v["ordered"] for v in holdout], [v["truth"] for v in holdout])
    # Within 0.03 of the best any model can do, and not above it beyond noise: an AUC above
    # the true probabilities' means the features saw the order (a leak).
    assert abs(best - accuracy.auc) < 0.03, (best, accuracy.auc)

    workspace.build("--select", "mart_model_accuracy", "mart_visitor_propensity")
    bins = workspace.sql(
        "select bin, sessions, auc from marts.mart_model_accuracy where tenant_id = 'shop' "
        "order by bin"
    )
    assert [b[0] for b in bins] == list(range(1, 11))
    assert sum(b[1] for b in bins) == len(holdout)
    assert all(b[2] == pytest.approx(accuracy.auc) for b in bins)
    scored = workspace.sql(
        "select user_key, active, propensity from marts.mart_visitor_propensity "
        "where tenant_id = 'shop'"
    )
    assert sorted(u for u, active, _ in scored if active) == [
        "clock",
        *[f"live{i:02d}" for i in range(20)],
    ]
    # and the sessions of the last day, no longer active; not those of 50 hours ago
    ended = {v["user"] for v in sent["visits"] if v["end"] >= now - timedelta(hours=24)}
    assert sorted(u for u, active, _ in scored if not active) == sorted(
        {f"today{i:02d}" for i in range(10)} | ended
    )
    assert all(0 < p < 1 for *_, p in scored)

    # `lakepulse predict` fits it again and says how good it is.
    printed = subprocess.run(
        [sys.executable, "-m", "lakepulse.cli", "predict", "--tenant", "shop"],
        env=settings.process_env(),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert printed.returncode == 0, printed.stderr
    assert f"shop: AUC {accuracy.auc:.3f} on {len(holdout)} held-out sessions" in printed.stdout
    assert "1 of 1 propensity models" in printed.stdout
    # Ten days of history are too few for the lifetime model: the output says what to do.
    assert "shop: not fitted" in printed.stdout
    assert "What to do about a tenant not fitted" in printed.stdout
    assert "mart_campaign_forecast" in printed.stdout
