"""The drop detector on hand-built minute series: what it flags, what it leaves alone."""

import pandas as pd
import pytest

from lakepulse.analytics.anomaly import DetectorSettings, detect
from lakepulse.core.settings import RetentionPolicy

START = pd.Timestamp("2026-11-22 10:00", tz="UTC")


def series(minutes: int, visitors=200, converting=20, orders=20, revenue=1000.0, change=None):
    rows = []
    for i in range(minutes):
        c, o, r = converting, orders, revenue
        if change and i >= change[0]:
            c, o, r = change[1], change[2], change[3]
        rows.append(
            {
                "tenant_id": "t",
                "minute_at": START + pd.Timedelta(minutes=i),
                "visitors": visitors,
                "converting_visitors": c,
                "orders": o,
                "revenue": r,
            }
        )
    return pd.DataFrame(rows)


def test_steady_traffic_raises_nothing():
    alerts, evaluated, _ = detect(series(120))
    assert alerts == []
    assert evaluated["t"] == START + pd.Timedelta(minutes=118)  # the last minute is skipped


def test_a_conversion_drop_is_flagged_once_then_cooled_down():
    alerts, _, quiet = detect(series(100, change=(70, 2, 2, 100.0)))
    metrics = sorted(a.metric for a in alerts)
    assert metrics == ["conversion_rate", "revenue"]
    first = min(a.minute_at for a in alerts)
    assert START + pd.Timedelta(minutes=70) <= first <= START + pd.Timedelta(minutes=71)
    assert quiet["t|conversion_rate"] == first + pd.Timedelta(minutes=30)
    assert "dropped" in alerts[0].message


def test_evaluation_resumes_where_it_stopped():
    data = series(100, change=(70, 2, 2, 100.0))
    first, evaluated, quiet = detect(data.iloc[:60])
    assert first == []
    later, _, _ = detect(data, evaluated, quiet)
    assert len(later) == 2


def test_traffic_too_thin_to_judge_is_left_alone():
    alerts, _, _ = detect(series(100, visitors=10, converting=1, orders=1, change=(70, 0, 0, 0.0)))
    assert alerts == []


def test_a_small_dip_is_not_an_incident():
    cfg = DetectorSettings()
    alerts, _, _ = detect(
        series(100, visitors=2000, converting=200, change=(70, 180, 180, 900.0)), cfg=cfg
    )
    assert alerts == []  # 10 % lower: significant with this much traffic, but below the 30 % floor


def test_retention_policy_reads_the_environment():
    policy = RetentionPolicy.from_env({"LAKEPULSE_RETENTION_BRONZE_EVENTS_DAYS": "30"})
    assert policy.bronze_events == 30 and policy.landing_files == 14
    with pytest.raises(ValueError, match="must be >= 1"):
        RetentionPolicy.from_env({"LAKEPULSE_RETENTION_LANDING_FILES_DAYS": "0"})
