"""Anomaly alerts as stored: a Delta table that dbt reads as the source ``ops.alerts`` (and
BI through ``mart_anomaly_alerts``), the minutes the detector reads from the replica, and the
optional webhook. The detection itself is pure and lives in :mod:`lakepulse.analytics.anomaly`."""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa

from lakepulse.analytics.anomaly import Alert, DetectorSettings
from lakepulse.core.duck import connect
from lakepulse.core.settings import Settings

ALERTS_SCHEMA = pa.schema(
    [
        pa.field("alert_id", pa.string(), nullable=False),
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("minute_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("detected_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ("current_value", pa.float64()),
        ("baseline_value", pa.float64()),
        ("relative_change", pa.float64()),
        ("z_score", pa.float64()),
        ("message", pa.string()),
    ]
)


def ensure_alerts_table(settings: Settings) -> None:
    """Create the (empty) table once, so dbt's source exists before the first alert."""
    from deltalake import write_deltalake

    path = settings.alerts_path
    if not (path / "_delta_log").exists():
        path.mkdir(parents=True, exist_ok=True)
        write_deltalake(str(path), ALERTS_SCHEMA.empty_table(), mode="append")


def record_alerts(settings: Settings, alerts: list[Alert]) -> None:
    from deltalake import write_deltalake

    ensure_alerts_table(settings)
    now = datetime.now(UTC)
    rows = [
        {**asdict(a), "alert_id": a.alert_id, "detected_at": now, "message": a.message}
        for a in alerts
    ]
    write_deltalake(
        str(settings.alerts_path), pa.Table.from_pylist(rows, schema=ALERTS_SCHEMA), mode="append"
    )


def post_webhook(alerts: list[Alert], url: str | None = None, timeout: float = 5.0) -> list[str]:
    """Slack-compatible JSON (``{"text": ...}``) to ``LAKEPULSE_ALERT_WEBHOOK_URL``, one post
    per alert. Returns the errors; a webhook that is down never stops detection."""
    import httpx

    url = url or os.environ.get("LAKEPULSE_ALERT_WEBHOOK_URL")
    if not url:
        return []
    errors = []
    for alert in alerts:
        try:
            httpx.post(url, json={"text": alert.message}, timeout=timeout).raise_for_status()
        except httpx.HTTPError as err:
            errors.append(f"{alert.alert_id}: {err}")
    return errors


def read_minutes(replica, since: datetime | None, cfg: DetectorSettings) -> pd.DataFrame:
    """The 1-minute rows the detector needs, from the read replica (never the live file)."""
    conn = connect(replica, read_only=True)
    try:
        lookback = (
            since - timedelta(minutes=cfg.current_minutes + cfg.baseline_minutes + 1)
            if since
            else None
        )
        return conn.execute(
            "select tenant_id, window_end_at as minute_at, visitors, converting_visitors, "
            "orders, cast(revenue as double) as revenue from marts.mart_conversion_windows "
            "where window_minutes = 1 and (? is null or window_end_at >= ?) order by 1, 2",
            [lookback, lookback],
        ).df()
    finally:
        conn.close()
