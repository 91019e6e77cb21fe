"""lakepulse.analytics.campaign_forecast on simulated campaigns whose day-7 revenue follows a
known law of their first 4 hours: the backtest's 80 % intervals cover 80 % +- 5, and the
forecast beats the naive one (4-hour revenue x a constant)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakepulse.analytics import campaign_forecast as cf


def campaigns(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    revenue_4h = rng.lognormal(6.0, 1.0, n)
    amplification = rng.gamma(2.0, 0.5, n)
    returning = rng.beta(2, 8, n)
    cart_minutes = rng.gamma(3.0, 5.0, n)
    log_7d = (
        np.log(revenue_4h)
        + 2.0
        + 0.4 * amplification
        + 2.0 * returning
        - 0.02 * cart_minutes
        + rng.normal(0, 0.25, n)
    )
    return pd.DataFrame(
        {
            "revenue_4h": revenue_4h,
            "social_amplification": amplification,
            "return_rate_24h": returning,
            "cart_completion_minutes": cart_minutes,
            "revenue_7d": np.exp(log_7d),
        }
    )


def test_backtest_covers_80_percent_and_beats_the_naive_forecast():
    result = cf.backtest(campaigns(400, seed=5))
    assert result.forecasts == 370
    assert 0.75 <= result.coverage <= 0.85, result
    assert result.median_ape < 0.8 * result.naive_median_ape, result


def test_the_model_uses_no_more_signals_than_the_campaigns_support():
    few = cf.forecast(campaigns(12, seed=1), {"revenue_4h": 500.0})
    assert few.features == ()  # 12 campaigns: the 4-hour revenue only
    some = cf.forecast(campaigns(35, seed=1), {"revenue_4h": 500.0, "social_amplification": 1.0})
    assert some.features == ("social_amplification",)
    many = cf.forecast(campaigns(200, seed=1), {"revenue_4h": 500.0})
    assert many.features == tuple(cf.EXTRA_FEATURES)  # a missing signal counts as the mean
    assert many.low < many.revenue_7d < many.high


def test_too_few_campaigns_is_a_clear_error():
    with pytest.raises(cf.ForecastError, match="needs 8"):
        cf.forecast(campaigns(5, seed=1), {"revenue_4h": 10.0})


def running_tenant(n: int, clock_day: float, seed: int = 3) -> pd.DataFrame:
    """``n`` campaigns of one tenant launched every 2 days from 2026-01-01, seen at
    ``clock_day`` days after that; plus one launched 2 hours before the clock."""
    frame = campaigns(n, seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    frame["launched_at"] = [start + pd.Timedelta(days=2 * k) for k in range(n)]
    clock = start + pd.Timedelta(days=clock_day)
    young = {"revenue_4h": 5.0, "revenue_7d": 5.0, "launched_at": clock - pd.Timedelta(hours=2)}
    frame = pd.concat([frame, pd.DataFrame([young])], ignore_index=True)
    frame["tenant_id"] = "acme"
    frame["campaign"] = [f"c{k:02d}" for k in range(len(frame))]
    frame["clock"] = clock
    return frame


def test_each_campaign_is_forecast_from_the_campaigns_ended_by_then():
    # Campaign k launches on day 2k and ends on day 2k + 7. At day 22.25: campaigns 0-7 ended;
    # campaign 7 ended on day 21, when 0-6 had (7: too few); 8-11 run on campaigns 0-7.
    frame = running_tenant(12, clock_day=22.25)
    rows = {row["campaign"]: row for row in cf.forecast_campaigns(frame)}
    assert [rows[f"c{k:02d}"]["status"] for k in (0, 7, 8, 11, 12)] == [
        "ended",
        "ended",
        "running",
        "running",
        "first_hours",
    ]
    assert rows["c07"]["training_campaigns"] == 7 and rows["c07"]["forecast_high"] is None
    assert "needs 8" in rows["c07"]["note"]
    assert rows["c07"]["actual_revenue_7d"] == pytest.approx(frame["revenue_7d"].iloc[7])
    assert rows["c08"]["training_campaigns"] == 8
    expected = cf.forecast(frame.iloc[:8], {"revenue_4h": frame["revenue_4h"].iloc[8]})
    assert rows["c08"]["forecast_high"] == pytest.approx(expected.high)
    assert rows["c08"]["forecast_as_of"] == frame["clock"].iloc[0]
    assert rows["c12"]["forecast_high"] is None and "4 hours" in rows["c12"]["note"]
    assert rows["c08"]["actual_revenue_7d"] is None


def test_day_one_signals_wait_for_the_first_24_hours_and_drivers_say_what_moved():
    # 40 ended campaigns support two extra signals (social amplification, return rate).
    frame = running_tenant(44, clock_day=2 * 43 + 0.5)  # the last is 12 hours old
    rows = {row["campaign"]: row for row in cf.forecast_campaigns(frame)}
    young, older = rows["c43"], rows["c42"]  # 12 hours, 2.5 days
    assert young["signals"] == older["signals"] == "social_amplification,return_rate_24h"
    assert young["drivers"]["social_amplification"] == {
        "value": None,
        "typical": pytest.approx(young["drivers"]["social_amplification"]["typical"]),
        "effect": 1.0,
    }
    assert older["drivers"]["social_amplification"]["value"] == pytest.approx(
        frame["social_amplification"].iloc[42]
    )
    revenue = older["drivers"]["revenue_4h"]
    assert revenue["value"] == pytest.approx(frame["revenue_4h"].iloc[42])
    # The 4-hour revenue's effect: the coefficient times its distance from the typical one.
    fit = cf.forecast(
        frame.iloc[:40],
        frame.iloc[42][["revenue_4h", *cf.EXTRA_FEATURES]].to_dict(),
    )
    slope = fit.coefficients["log1p(revenue_4h)"]
    typical = np.log1p(frame["revenue_4h"].iloc[:40]).mean()
    assert revenue["effect"] == pytest.approx(
        np.exp(slope * (np.log1p(revenue["value"]) - typical))
    )
    assert cf.main_driver(older["drivers"]).startswith(
        max(
            (k for k, v in older["drivers"].items() if v["value"] is not None),
            key=lambda k: abs(np.log(older["drivers"][k]["effect"])),
        )
    )
