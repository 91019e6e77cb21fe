"""The trigger tables dbt reads but does not write: the firings and deliveries Delta tables and
the running definitions file. They must exist before the first build (dbt's sources read them), so every
build ensures them; only ``lakepulse.triggers`` writes them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from lakepulse.core.delta_tables import ensure_upkeep_properties, upkeep_properties
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
"""One row per firing, unique on firing_id (the contract with delivery, issue 17)."""
FIRINGS_STATS = ("fired_at",)
"""The firings' columns with file statistics (:mod:`lakepulse.core.delta_tables`)."""

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
"""One row per delivery attempt outcome (firing x destination); the latest row is the state."""
DELIVERIES_STATS = ("recorded_at",)

WRITTEN_SCHEMA = pa.schema(
    [
        pa.field("firing_id", pa.string(), nullable=False),
        pa.field("written_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
"""Firings whose `Trigger Fired` event is in the landing log (the outbox's done list)."""
WRITTEN_STATS = ("written_at",)


def firings_written_path(settings: Settings) -> Path:
    return settings.trigger_firings_path.with_name("firings_written")


def ensure_delta_table(path: Path, schema: pa.Schema, stats_columns: tuple[str, ...]) -> None:
    """Create an empty Delta table with ``schema`` at ``path`` unless one is there (a
    concurrent creator may win: that is fine), with statistics on ``stats_columns`` and
    frequent checkpoints (:func:`~lakepulse.core.delta_tables.upkeep_properties`)."""
    from deltalake import write_deltalake

    if not (path / "_delta_log").exists():
        path.mkdir(parents=True, exist_ok=True)
        try:
            write_deltalake(
                str(path),
                schema.empty_table(),
                mode="append",
                configuration=upkeep_properties(stats_columns),
            )
        except Exception:
            if not (path / "_delta_log").exists():  # not a concurrent creation
                raise


def definitions_file(settings: Settings) -> Path:
    """The running trigger definitions as dbt reads them (source `triggers.definitions`)."""
    return settings.triggers_dir / "definitions.ndjson"


def ensure_trigger_tables(settings: Settings) -> None:
    """Create the (empty) firings and deliveries tables and definitions file when missing, so
    every reader (dbt's sources, the deliverer's queries) finds them before the first firing."""
    ensure_delta_table(settings.trigger_firings_path, FIRINGS_SCHEMA, FIRINGS_STATS)
    ensure_delta_table(settings.trigger_deliveries_path, DELIVERIES_SCHEMA, DELIVERIES_STATS)
    ensure_delta_table(firings_written_path(settings), WRITTEN_SCHEMA, WRITTEN_STATS)
    definitions = definitions_file(settings)
    if not definitions.exists():
        definitions.parent.mkdir(parents=True, exist_ok=True)
        definitions.touch()


def configure_firing_tables(settings: Settings) -> None:
    """The firings' and the outbox's properties on tables made before they were set at
    creation (see :mod:`lakepulse.core.delta_tables`). Under the firing lock, which their
    writers take."""
    ensure_upkeep_properties(settings.trigger_firings_path, FIRINGS_STATS)
    ensure_upkeep_properties(firings_written_path(settings), WRITTEN_STATS)


def configure_deliveries_table(settings: Settings) -> None:
    """The deliveries' properties on a table made before they were set at creation. Under the
    delivery pass's lock, which its writers take."""
    ensure_upkeep_properties(settings.trigger_deliveries_path, DELIVERIES_STATS)
