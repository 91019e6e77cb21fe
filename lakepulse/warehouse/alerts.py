"""What the reference anomaly detector (:mod:`lakepulse.analytics.anomaly`) reads: the
1-minute windows in the read replica. Alerts themselves are firings of the trigger kind
`anomaly` (models/triggers/trigger_anomaly.sql), stored and delivered like every firing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from lakepulse.analytics.anomaly import DetectorSettings
from lakepulse.core.duck import connect


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
