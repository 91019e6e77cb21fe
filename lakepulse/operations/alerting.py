"""Anomaly alerting as one workflow: read the 1-minute windows the replica holds, detect drops
(:mod:`lakepulse.analytics.anomaly`), record new alerts and post them. The Dagster sensor calls
:func:`evaluate_alerts` every minute and keeps the returned state as its cursor."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd

from lakepulse.analytics.anomaly import Alert, DetectorSettings, detect
from lakepulse.core.settings import Settings
from lakepulse.warehouse.alerts import post_webhook, read_minutes, record_alerts


@dataclass
class AlertingResult:
    """What one evaluation found: new alerts (already recorded and posted), the state to pass
    to the next evaluation, why nothing was evaluated (if so) and webhook errors."""

    alerts: list[Alert] = field(default_factory=list)
    state: dict = field(default_factory=dict)
    skipped: str | None = None
    webhook_errors: list[str] = field(default_factory=list)


def evaluate_alerts(
    settings: Settings, state: dict, cfg: DetectorSettings | None = None
) -> AlertingResult:
    """Evaluate every complete minute since the last evaluation. ``state`` holds, per tenant,
    the last minute evaluated and, per tenant and metric, the end of its cooldown."""
    cfg = cfg or DetectorSettings()
    if not settings.replica_path.exists():
        return AlertingResult(state=state, skipped="no marts yet: the first run has not finished")
    evaluated = {t: pd.Timestamp(v) for t, v in state.get("evaluated", {}).items()}
    quiet = {k: pd.Timestamp(v) for k, v in state.get("quiet", {}).items()}
    since = min(evaluated.values()) if evaluated else None
    try:
        minutes = read_minutes(settings.replica_path, since, cfg)
    except duckdb.CatalogException:
        return AlertingResult(state=state, skipped="mart_conversion_windows is not built yet")
    alerts, evaluated, quiet = detect(minutes, evaluated, quiet, cfg)
    new_state = {
        "evaluated": {t: v.isoformat() for t, v in evaluated.items()},
        "quiet": {k: v.isoformat() for k, v in quiet.items()},
    }
    if not alerts:
        latest = max(evaluated.values(), default="-")
        return AlertingResult(
            state=new_state, skipped=f"no drop in conversion or revenue up to {latest}"
        )
    record_alerts(settings, alerts)
    return AlertingResult(alerts=alerts, state=new_state, webhook_errors=post_webhook(alerts))
