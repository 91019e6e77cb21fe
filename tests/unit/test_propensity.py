"""lakepulse.analytics.propensity: labels and calibration bins against hand-made examples, and
the model against the best possible AUC on sessions drawn with known buying probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from lakepulse.analytics import propensity

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def test_an_order_within_24_hours_of_the_session_start_labels_it():
    sessions = pd.DataFrame(
        {
            "user_key": ["ann", "ann", "bob", "cy"],
            "session_start_at": [T0, T0 + pd.Timedelta(days=2), T0, T0],
        }
    )
    orders = pd.DataFrame(
        {
            "user_key": ["ann", "bob", "dee"],
            "ordered_at": [
                T0 + pd.Timedelta(hours=23, minutes=59),  # ann's first session: in
                T0 + pd.Timedelta(hours=24),  # bob: exactly 24 h later is out
                T0,
            ],
        }
    )
    assert propensity.label_sessions(sessions, orders).tolist() == [1, 0, 0, 0]


def test_only_sessions_whose_24_hours_are_over_are_labelled_and_the_last_day_is_held_out():
    starts = [T0 + pd.Timedelta(hours=h) for h in (0, 30, 47, 50, 80)]
    sessions = pd.DataFrame({"session_start_at": starts, "x": range(5)})
    now = T0 + pd.Timedelta(hours=75)
    examples = propensity.labelled(sessions, now)
    assert examples["x"].tolist() == [0, 1, 2, 3]  # at 75 h the 80 h session has no label yet
    train, holdout = propensity.time_split(examples)
    # the last labelled start is 50 h: the holdout is (26 h, 50 h]
    assert train["x"].tolist() == [0] and holdout["x"].tolist() == [1, 2, 3]


def test_calibration_bins_are_equal_count_and_ordered():
    predicted = [0.9, 0.1, 0.2, 0.8, 0.3, 0.7]
    labels = [1, 0, 1, 1, 0, 0]
    bins = propensity.calibration_curve(labels, predicted, bins=3)
    assert [(b["bin"], b["sessions"]) for b in bins] == [(1, 2), (2, 2), (3, 2)]
    assert [b["predicted_rate"] for b in bins] == pytest.approx([0.15, 0.5, 0.85])
    assert [b["observed_rate"] for b in bins] == [0.5, 0.0, 1.0]
    assert (bins[0]["predicted_low"], bins[2]["predicted_high"]) == (0.1, 0.9)


CHANNELS = {"direct": 0.0, "search": 0.2, "social": -0.4, "email": 0.7, "paid": 0.3}
DEVICES = {"desktop": 0.0, "mobile": -0.3, "tablet": -0.1}


def simulate_sessions(days: int, per_day: int, seed: int) -> pd.DataFrame:
    """Sessions whose buying probability is known: a logistic function, with a nonlinearity
    and an interaction, of the behaviour the model sees."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    returning = rng.random(n) < 0.35
    past_orders = np.where(returning, rng.poisson(1.2, n), 0)
    product_views = rng.poisson(3.0, n)
    page_views = product_views + rng.poisson(2.0, n)
    cart_adds = rng.binomial(product_views, 0.15)
    cart_value = np.array([rng.gamma(2.0, 20.0, k).sum() for k in cart_adds])
    duration = rng.exponential(60.0 * (1 + page_views))
    channel = rng.choice(list(CHANNELS), n)
    device = rng.choice(list(DEVICES), n)
    logit = (
        -4.0
        + 1.8 * (cart_adds > 0)
        + 0.6 * np.log1p(cart_value / 50.0)
        + 0.25 * np.sqrt(product_views)
        + 0.7 * returning
        + 0.35 * np.minimum(past_orders, 3)
        + np.array([CHANNELS[c] for c in channel])
        + np.array([DEVICES[d] for d in device])
    )
    truth = 1 / (1 + np.exp(-logit))
    start = T0 + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, n)), unit="s")
    return pd.DataFrame(
        {
            "session_start_at": start,
            "page_views": page_views,
            "product_views": product_views,
            "cart_adds": cart_adds,
            "cart_value": cart_value,
            "duration_s": duration,
            "returning_visitor": returning.astype(int),
            "past_orders": past_orders,
            "channel": channel,
            "device_class": device,
            "ordered_24h": (rng.random(n) < truth).astype(int),
            "truth": truth,
        }
    )


def test_the_model_comes_within_0_03_auc_of_the_true_probabilities():
    sessions = simulate_sessions(days=15, per_day=3000, seed=7)
    now = sessions["session_start_at"].max() + pd.Timedelta(hours=24)
    fitted = propensity.fit_tenant(sessions, now)
    holdout = sessions[
        sessions["session_start_at"] > sessions["session_start_at"].max() - pd.Timedelta(days=1)
    ]
    assert fitted.accuracy.holdout_sessions == len(holdout)
    best = roc_auc_score(holdout["ordered_24h"], holdout["truth"])
    ours = roc_auc_score(holdout["ordered_24h"], fitted.holdout_predictions)
    assert fitted.accuracy.auc == pytest.approx(ours)
    assert best - ours < 0.03, (best, ours)
    # Calibrated: each decile's predicted rate within 0.03 of the true mean probability there.
    order = np.argsort(fitted.holdout_predictions, kind="stable")
    for row, chunk in zip(fitted.accuracy.calibration, np.array_split(order, 10), strict=True):
        assert row["predicted_rate"] == pytest.approx(
            holdout["truth"].to_numpy()[chunk].mean(), abs=0.03
        )
    # The live model scores unseen sessions in the same way.
    fresh = simulate_sessions(days=1, per_day=3000, seed=8)
    assert roc_auc_score(fresh["ordered_24h"], propensity.score(fitted.model, fresh)) > best - 0.05


def test_too_little_data_is_a_clear_error():
    sessions = simulate_sessions(days=3, per_day=30, seed=1)
    with pytest.raises(propensity.PropensityError, match="need at least"):
        propensity.fit_tenant(sessions, sessions["session_start_at"].max() + pd.Timedelta(days=1))
