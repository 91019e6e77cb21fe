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
