"""lakepulse.analytics.clv: the daily-occasion summary against hand-counted examples, and the
maximum-likelihood fit against the published CDNOW results (the dataset ships with lifetimes)."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from lakepulse.analytics import clv


def orders(*rows: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "order_date", "revenue"])


def test_the_summary_counts_purchase_occasions_per_day():
    frame = orders(
        # ann: 3 orders on 3 days, two of them the same day -> 2 occasions, 1 repeat
        ("ann", "2025-01-01T09:00:00+00:00", 10.0),
        ("ann", "2025-01-05T08:00:00+00:00", 20.0),
        ("ann", "2025-01-05T21:30:00+00:00", 5.0),
        # bob: one order: no repeat
        ("bob", "2025-01-03T12:00:00+00:00", 40.0),
        # cy: 4 occasions; the first (excluded from the value) is the largest
        ("cy", "2025-01-02T10:00:00+00:00", 100.0),
        ("cy", "2025-01-04T10:00:00+00:00", 10.0),
        ("cy", "2025-01-06T23:59:59+00:00", 30.0),
        ("cy", "2025-01-08T00:00:00+00:00", 20.0),
        # dee: only after the end of observation: not a customer yet
        ("dee", "2025-01-11T10:00:00+00:00", 70.0),
        # eve: a day's last second and the next day's first are two occasions (UTC days)
        ("eve", "2025-01-09T23:59:59+00:00", 1.0),
        ("eve", "2025-01-10T00:00:01+00:00", 2.0),
        # ann again, after the end: ignored
        ("ann", "2025-01-12T10:00:00+00:00", 99.0),
    )
    summary = clv.rfm_summary(frame, date(2025, 1, 10))
    assert list(summary.index) == ["ann", "bob", "cy", "eve"]
    got = summary[["frequency", "recency", "T", "monetary_value"]].to_dict("index")
    assert got == {
        "ann": {"frequency": 1, "recency": 4.0, "T": 9.0, "monetary_value": 25.0},
        "bob": {"frequency": 0, "recency": 0.0, "T": 7.0, "monetary_value": 0.0},
        "cy": {"frequency": 3, "recency": 6.0, "T": 8.0, "monetary_value": 20.0},
        "eve": {"frequency": 1, "recency": 1.0, "T": 1.0, "monetary_value": 2.0},
    }


def test_occasions_sum_the_revenue_of_a_day():
    frame = orders(
        ("ann", "2025-01-05T08:00:00+00:00", 20.0),
        ("ann", "2025-01-05T21:30:00+00:00", 5.0),
        ("ann", "2025-01-05T22:00:00+00:00", None),
    )
    occasions = clv.daily_occasions(frame)
    assert occasions[["customer_id", "orders", "revenue"]].values.tolist() == [["ann", 3, 25.0]]


def test_timestamps_are_taken_as_their_utc_day():
    frame = orders(
        ("ann", "2025-01-05T23:30:00-05:00", 1.0), ("ann", "2025-01-06T02:00:00+00:00", 1.0)
    )
    # 23:30 at UTC-5 is 04:30 UTC on the 6th: one occasion
    assert clv.rfm_summary(frame, date(2025, 1, 6))["frequency"].tolist() == [0]


CDNOW = Path(__import__("lifetimes").__file__).parent / "datasets" / "CDNOW_sample.txt"


def cdnow_orders() -> pd.DataFrame:
    frame = pd.read_csv(
        CDNOW,
        sep=r"\s+",
        header=None,
        names=["customer_id", "master_id", "order_date", "cds", "revenue"],
        dtype={"customer_id": str, "order_date": str},
    )
    frame["order_date"] = pd.to_datetime(frame["order_date"], format="%Y%m%d")
    return frame


def test_the_fit_reproduces_the_published_cdnow_estimates():
    """Fader, Hardie & Lee (2005), CDNOW sample of 2357 customers, 39-week calibration period
    (1997-01-01 to 1997-09-30): r = 0.243, alpha = 4.414 (weeks), a = 0.793, b = 2.426,
    LL = -9582.4. Fader & Hardie (2013), the 946 repeat customers: p = 6.25, q = 3.74,
    gamma = 15.44. Time in days here: alpha is 7 times the weekly one, and the log-likelihood
    differs by sum(x) * ln 7 (each of the x interpurchase densities changes unit)."""
    frame = cdnow_orders()
    summary = clv.rfm_summary(frame, date(1997, 9, 30))
    fit = clv.fit(summary)
    assert fit.customers == 2357 and fit.repeat_customers == 946
    assert fit.r == pytest.approx(0.243, abs=0.0005)
    assert fit.alpha / 7 == pytest.approx(4.414, abs=0.0005)
    assert fit.a == pytest.approx(0.793, abs=0.0005)
    assert fit.b == pytest.approx(2.426, abs=0.0005)
    repeat_occasions = int(summary["frequency"].sum())
    assert fit.log_likelihood + repeat_occasions * math.log(7) == pytest.approx(-9582.4, abs=0.05)
    assert (fit.p, fit.q, fit.gamma) == pytest.approx((6.25, 3.74, 15.44), abs=0.005)


def test_predictions_follow_the_closed_forms():
    """P(alive) (Fader, Hardie & Lee 2008 note) and the days to the next order, from the
    published CDNOW parameters, written out here for two histories."""
    model = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426, "p": None}
    summary = pd.DataFrame(
        {
            "frequency": [0, 2, 5],
            "recency": [0.0, 30.0, 200.0],
            "T": [100.0, 250.0, 210.0],
            "monetary_value": [0.0, 20.0, 30.0],
        },
        index=pd.Index(["one", "gone", "loyal"], name="customer_id"),
    )
    got = clv.predict(summary, model, date(2025, 6, 30))
    r, alpha, a, b = 0.243, 4.414 * 7, 0.793, 2.426

    def alive(x, t_x, age):
        return 1 / (1 + a / (b + x - 1) * ((alpha + age) / (alpha + t_x)) ** (r + x))

    assert got.loc["one", "p_alive"] == 1.0
    assert got.loc["gone", "p_alive"] == pytest.approx(alive(2, 30, 250), rel=1e-12)
    assert got.loc["loyal", "p_alive"] == pytest.approx(alive(5, 200, 210), rel=1e-12)
    assert got["churn_risk"].tolist() == ["one_time", "high", "low"]
    # loyal: P(alive) * (1 - ((alpha+T)/(alpha+T+t))^(r+x)) = 1/2
    pa = alive(5, 200, 210)
    t = (alpha + 210) * ((1 - 0.5 / pa) ** (-1 / (r + 5)) - 1)
    assert got.loc["loyal", "predicted_next_order_date"] == pd.Timestamp(
        "2025-06-30"
    ) + pd.Timedelta(days=math.ceil(t))
    assert pd.isna(got.loc["gone", "predicted_next_order_date"])  # more likely gone
    assert got["expected_order_value"].isna().all()  # no Gamma-Gamma fit given


def test_too_few_customers_is_a_clear_error():
    frame = orders(("ann", "2025-01-01", 1.0), ("ann", "2025-01-03", 1.0))
    with pytest.raises(clv.FitError, match="at least 20"):
        clv.fit(clv.rfm_summary(frame, date(2025, 1, 10)))


def test_the_summary_agrees_with_lifetimes_own_on_cdnow():
    """lifetimes' `summary_data_from_transaction_data` (freq="D") is the usual RFM summary;
    ours must give the same per-day frequency, recency, T and monetary value."""
    from lifetimes.utils import summary_data_from_transaction_data

    frame = cdnow_orders()
    theirs = summary_data_from_transaction_data(
        frame, "customer_id", "order_date", "revenue", observation_period_end="1998-06-30", freq="D"
    ).sort_index()
    ours = clv.rfm_summary(frame, date(1998, 6, 30))
    assert list(ours.index) == list(theirs.index)
    for column in ("frequency", "recency", "T", "monetary_value"):
        assert ours[column].to_numpy() == pytest.approx(theirs[column].to_numpy(), abs=1e-9), column


def test_customers_who_all_buy_alike_are_a_clear_error():
    """Everyone buys every 7 days and never stops: no heterogeneity to estimate (r and alpha
    grow without bound), which the fit says instead of returning a boundary as an estimate."""
    rows = [
        (f"c{c}", (pd.Timestamp("2025-01-01") + pd.Timedelta(days=c % 7 + 7 * k)).date(), 1.0)
        for c in range(200)
        for k in range(8)
    ]
    with pytest.raises(clv.FitError, match="no maximum at finite parameters"):
        clv.fit(clv.rfm_summary(orders(*rows), date(2025, 3, 1)))
