"""The trigger tables delivery reads and writes, created empty before anyone reads them (dbt's
sources and the deliverer's queries fail on a missing Delta table). Only
``lakepulse.triggers`` writes rows to them."""

from __future__ import annotations

import pyarrow as pa

from lakepulse.core.settings import Settings

FIRINGS_SCHEMA = pa.schema(
    [
        pa.field("firing_id", pa.string(), nullable=False),
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("trigger", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        ("user_id", pa.string()),
        pa.field("fired_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("arm", pa.string(), nullable=False),
        ("payload", pa.string()),
        ("destinations", pa.string()),
    ]
)
"""The firings table as the firing step writes it (shared contract)."""

DELIVERIES_SCHEMA = pa.schema(
    [
        ("firing_id", pa.string()),
        ("destination", pa.string()),
        ("tenant_id", pa.string()),
        ("trigger", pa.string()),
        ("status", pa.string()),  # pending | retrying | delivered | dead
        ("attempts", pa.int32()),  # attempts since the schedule (re)started
        ("last_status_code", pa.int32()),
        ("last_error", pa.string()),
        ("next_attempt_at", pa.timestamp("us", tz="UTC")),
        ("delivered_at", pa.timestamp("us", tz="UTC")),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]
)


def ensure_delivery_tables(settings: Settings) -> None:
    """Create the empty firings and deliveries tables once, so every reader (dbt's sources,
    this module's queries) finds them before the first firing."""
    from deltalake import write_deltalake

    for path, schema in (
        (settings.trigger_firings_path, FIRINGS_SCHEMA),
        (settings.trigger_deliveries_path, DELIVERIES_SCHEMA),
    ):
        if not (path / "_delta_log").exists():
            path.mkdir(parents=True, exist_ok=True)
            try:
                write_deltalake(str(path), schema.empty_table(), mode="append")
            except Exception:
                if not (path / "_delta_log").exists():  # not a concurrent creation
                    raise
