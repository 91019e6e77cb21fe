"""Anomaly detection on the live conversion windows: a drop in conversion rate or revenue.

The pipeline runs it as the trigger kind `anomaly` (models/triggers/trigger_anomaly.sql, the
same method in SQL); this module is its reference implementation and the analysis tool.

Method (per tenant, evaluated for every complete minute t, from the 1-minute rows of
``mart_conversion_windows``):

- current window: the ``current_minutes`` (3) minutes ending at t; baseline: the
  ``baseline_minutes`` (60) before it. Traffic itself may rise or fall, so both metrics are
  compared per visitor: the baseline's rate times the current visitors gives the count the
  current window should have had, E.
- conversion drop: the converting visitors X in the current window against E, as a Poisson
  count whose mean is only estimated from the baseline: z = (X - E) / sqrt(E (1 + n_c / n_b)).
  Alert when z < -4 and the rate fell by at least 30 %, provided E >= 10 (otherwise there is
  too little traffic to tell a drop from chance).
- revenue drop: the same test on the number of orders (revenue is too heavy-tailed to test
  directly), and the revenue itself at most 70 % of what the baseline predicts.
- after an alert, the same tenant and metric stay quiet for ``cooldown_minutes`` (30): one
  incident, one alert.

z < -4 means about 3 false alarms in 100,000 checks under normal traffic; with overlapping
windows and the minimum drop the rate is lower still (a seeded simulated day of traffic
raises none, see tests). The last minute of each tenant is never evaluated: it is still
filling up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd


@dataclass(frozen=True)
class DetectorSettings:
    current_minutes: int = 3
    baseline_minutes: int = 60
    z_threshold: float = 4.0
    min_relative_drop: float = 0.3
    min_expected: float = 10.0
    cooldown_minutes: int = 30


@dataclass
class Alert:
    tenant_id: str
    metric: str
    minute_at: datetime
    current_value: float
    baseline_value: float
    relative_change: float
    z_score: float

    @property
    def alert_id(self) -> str:
        return f"{self.tenant_id}:{self.metric}:{self.minute_at.isoformat()}"

    @property
    def message(self) -> str:
        label = "conversion rate" if self.metric == "conversion_rate" else "revenue"
        return (
            f"lakepulse: {label} of {self.tenant_id} dropped {-self.relative_change:.0%} in the "
            f"window ending {self.minute_at:%Y-%m-%d %H:%M} UTC ({self.current_value:.4g} vs "
            f"{self.baseline_value:.4g} expected from the previous hour; z = {self.z_score:.1f})"
        )


def _poisson_z(observed: float, expected: float, ratio: float) -> float:
    return (observed - expected) / math.sqrt(expected * (1 + ratio))


def detect(
    minutes: pd.DataFrame,
    evaluated_until: dict[str, datetime] | None = None,
    quiet_until: dict[str, datetime] | None = None,
    cfg: DetectorSettings | None = None,
    stats: dict[str, int] | None = None,
) -> tuple[list[Alert], dict[str, datetime], dict[str, datetime]]:
    """Alerts for every complete minute after ``evaluated_until[tenant]``.

    ``minutes``: one row per tenant and minute (`tenant_id`, `minute_at`, `visitors`,
    `converting_visitors`, `orders`, `revenue`), quiet minutes included. Returns the alerts
    and the updated `evaluated_until` and `quiet_until` (cooldown per tenant|metric).
    ``stats``, when given, counts the minutes evaluated and those with enough traffic that a
    total loss of conversions would have raised an alert ("testable")."""
    cfg = cfg or DetectorSettings()
    evaluated_until = dict(evaluated_until or {})
    quiet_until = dict(quiet_until or {})
    alerts: list[Alert] = []
    c, b = cfg.current_minutes, cfg.baseline_minutes
    for tenant, rows in minutes.groupby("tenant_id", sort=True):
        rows = rows.sort_values("minute_at")
        times = list(rows["minute_at"])
        sums = {
            col: [0.0, *rows[col].astype(float).cumsum().tolist()]
            for col in ("visitors", "converting_visitors", "orders", "revenue")
        }

        def window(col: str, start: int, end: int, sums=sums) -> float:
            return sums[col][end] - sums[col][start]  # rows [start, end)

        done = evaluated_until.get(tenant)
        for i in range(c + b - 1, len(times) - 1):  # the last minute is still filling
            minute = times[i]
            if done is not None and minute <= done:
                continue
            cur, base = (i + 1 - c, i + 1), (i + 1 - c - b, i + 1 - c)
            n_c, n_b = window("visitors", *cur), window("visitors", *base)
            if n_b <= 0 or n_c <= 0:
                continue
            ratio = n_c / n_b
            if stats is not None:
                expected = window("converting_visitors", *base) * ratio
                stats["minutes"] = stats.get("minutes", 0) + 1
                if (
                    expected >= cfg.min_expected
                    and _poisson_z(0, expected, ratio) < -cfg.z_threshold
                ):
                    stats["testable"] = stats.get("testable", 0) + 1
            for alert in (
                _conversion_drop(tenant, minute, cfg, ratio, n_c, n_b, window, cur, base),
                _revenue_drop(tenant, minute, cfg, ratio, window, cur, base),
            ):
                if alert is None:
                    continue
                key = f"{tenant}|{alert.metric}"
                if key in quiet_until and minute < quiet_until[key]:
                    continue
                quiet_until[key] = minute + timedelta(minutes=cfg.cooldown_minutes)
                alerts.append(alert)
        if len(times) > 1:
            evaluated_until[tenant] = max(times[-2], done) if done else times[-2]
    return alerts, evaluated_until, quiet_until


def _conversion_drop(tenant, minute, cfg, ratio, n_c, n_b, window, cur, base) -> Alert | None:
    x_c, x_b = window("converting_visitors", *cur), window("converting_visitors", *base)
    expected = x_b * ratio
    if expected < cfg.min_expected:
        return None
    z = _poisson_z(x_c, expected, ratio)
    rate_c, rate_b = x_c / n_c, x_b / n_b
    change = rate_c / rate_b - 1
    if z < -cfg.z_threshold and change <= -cfg.min_relative_drop:
        return Alert(tenant, "conversion_rate", minute, rate_c, rate_b, change, z)
    return None


def _revenue_drop(tenant, minute, cfg, ratio, window, cur, base) -> Alert | None:
    o_c, o_b = window("orders", *cur), window("orders", *base)
    expected_orders = o_b * ratio
    if expected_orders < cfg.min_expected:
        return None
    z = _poisson_z(o_c, expected_orders, ratio)
    r_c, expected_revenue = window("revenue", *cur), window("revenue", *base) * ratio
    if expected_revenue <= 0:
        return None
    change = r_c / expected_revenue - 1
    if z < -cfg.z_threshold and change <= -cfg.min_relative_drop:
        return Alert(tenant, "revenue", minute, r_c, expected_revenue, change, z)
    return None


# The reference implementation: models/triggers/trigger_anomaly.sql fires the same minutes
# (tests/integration/test_anomaly_alerts.py compares them).
