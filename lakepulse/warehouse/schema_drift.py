"""Incremental tables whose columns no longer match their model's contract.

An incremental model appends to and replaces parts of the table it built before. When a
release changes the model's columns, the table an existing data directory holds no longer
fits: dbt stops the model (``on_schema_change='fail'``) in every minute's build from then on,
and the operator had to know to run one full refresh of it. The models with an enforced
contract name every column in their YAML, so the mismatch can be seen before dbt runs, from
the manifest and the warehouse's catalog alone; :func:`lakepulse.operations.rebuild.
migrate_changed_schemas` then rebuilds those models (and what they feed) once.

Incremental models without a contract are not covered: their columns are known only to their
SQL. Checked once per version of the project (a hash of the files dbt parses), so a minute's
build pays only that hash while the project stays as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lakepulse.core.duck import connect
from lakepulse.core.settings import Settings


@dataclass(frozen=True)
class Drift:
    """A model whose table has other columns than its contract: ``missing`` from the table,
    ``extra`` in it."""

    model: str
    missing: tuple[str, ...]
    extra: tuple[str, ...]

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append("new " + ", ".join(self.missing))
        if self.extra:
            parts.append("dropped " + ", ".join(self.extra))
        return f"{self.model} ({'; '.join(parts)})"


def migration_message(drifts: list[Drift]) -> str:
    """What the operator is told before the rebuild (the Dagster run log, the CLI)."""
    return (
        "rebuilding from bronze, once, the incremental models whose columns changed and what "
        "they feed: " + ", ".join(drift.describe() for drift in drifts)
    )


def checked_already(settings: Settings, project: str) -> bool:
    """Whether the tables were checked against the project whose fingerprint is ``project``
    (:func:`lakepulse.warehouse.dbt.project_fingerprint`)."""
    marker = settings.schemas_checked_marker_path
    return marker.exists() and marker.read_text().strip() == project


def remember_checked(settings: Settings, project: str) -> None:
    settings.schemas_checked_marker_path.write_text(project + "\n")


def contracted_incremental_models(manifest: dict) -> dict[tuple[str, str], tuple[str, list[str]]]:
    """(schema, table) -> (model name, contract columns) of the incremental models with an
    enforced contract."""
    models = {}
    for node in manifest["nodes"].values():
        config = node.get("config", {})
        if (
            node.get("resource_type") == "model"
            and config.get("materialized") == "incremental"
            and config.get("contract", {}).get("enforced")
        ):
            table = (node["schema"].lower(), (node.get("alias") or node["name"]).lower())
            models[table] = (node["name"], [c.lower() for c in node.get("columns", {})])
    return models


def drifted_models(settings: Settings) -> list[Drift]:
    """The incremental models with a contract whose existing table has other columns. A
    table not built yet is not drift: dbt creates it as the contract says."""
    path = settings.dbt_manifest_path
    if not (path.exists() and settings.warehouse_path.exists()):
        return []
    models = contracted_incremental_models(json.loads(path.read_text()))
    if not models:
        return []
    conn = connect(settings.warehouse_path, read_only=True)
    try:
        # tables only (duckdb_tables): binding a view over bronze would read Delta metadata
        rows = conn.sql(
            "select lower(c.schema_name), lower(c.table_name), lower(c.column_name) "
            "from duckdb_columns() as c "
            "semi join duckdb_tables() as t "
            "on c.database_name = t.database_name and c.schema_name = t.schema_name "
            "and c.table_name = t.table_name "
            "where c.database_name = current_database()"
        ).fetchall()
    finally:
        conn.close()
    existing: dict[tuple[str, str], set[str]] = {}
    for schema, table, column in rows:
        existing.setdefault((schema, table), set()).add(column)
    drifts = []
    for table, (model, contract) in sorted(models.items()):
        if table not in existing:
            continue
        missing = tuple(c for c in contract if c not in existing[table])
        extra = tuple(sorted(existing[table] - set(contract)))
        if missing or extra:
            drifts.append(Drift(model, missing, extra))
    return drifts
