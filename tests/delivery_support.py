"""Test data for delivery tests: firings written into the real firings Delta table, a
triggers file with the destinations under test, and the deliveries table read back."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import yaml
from deltalake import DeltaTable, write_deltalake

from lakepulse.core.settings import Settings
from lakepulse.warehouse.trigger_tables import FIRINGS_SCHEMA, ensure_trigger_tables

FIRED_AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def firing(
    index: int,
    *,
    destinations: tuple[str, ...] = ("hook",),
    arm: str = "treatment",
    trigger: str = "cart_abandoned",
    tenant_id: str = "shop",
    user_id: str | None = None,
) -> dict:
    return {
        "firing_id": f"f-{trigger}-{index:05d}",
        "tenant_id": tenant_id,
        "trigger": trigger,
        "kind": "cart_abandoned",
        "user_id": user_id or f"u{index}",
        "fired_at": FIRED_AT + timedelta(seconds=index),
        "occurred_at": FIRED_AT + timedelta(seconds=index) - timedelta(minutes=30),
        "arm": arm,
        "payload": json.dumps({"cart_value": 40 + index, "items": 2}),
        "destinations": json.dumps(list(destinations)),
    }


def write_firings(settings: Settings, rows: list[dict]) -> None:
    ensure_trigger_tables(settings)
    table = pa.Table.from_pylist(rows, schema=FIRINGS_SCHEMA)
    write_deltalake(str(settings.trigger_firings_path), table, mode="append")


def write_triggers_file(directory: Path, destinations: dict) -> Path:
    path = directory / "triggers.yml"
    path.write_text(yaml.safe_dump({"destinations": destinations, "triggers": []}))
    return path


def webhook(url: str, **fields) -> dict:
    return {
        "type": "webhook",
        "url": url,
        "secret": "${HOOK_SECRET}",
        "allow_private": True,
        # The product's default: on a loaded 2-core CI machine a local answer can take
        # seconds, and a test that is not about timeouts must not fail on one.
        "timeout_seconds": 10,
        **fields,
    }


def delivery_rows(settings: Settings) -> list[dict]:
    rows = DeltaTable(str(settings.trigger_deliveries_path)).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda r: (r["recorded_at"], r["attempts"]))


def latest_states(settings: Settings) -> dict[tuple[str, str], dict]:
    latest: dict[tuple[str, str], dict] = {}
    for row in delivery_rows(settings):
        latest[(row["firing_id"], row["destination"])] = row
    return latest


def contract_arm(trigger: str, tenant_id: str, user_id: str, holdout: float) -> str:
    """The documented arm rule written out here, not imported from the product: the first 15
    hex digits of sha256("trigger|tenant|user") as a fraction of 16**15; below the holdout
    share is `holdout`."""
    digest = hashlib.sha256(f"{trigger}|{tenant_id}|{user_id}".encode()).hexdigest()
    return "holdout" if int(digest[:15], 16) / 16**15 < holdout else "treatment"
