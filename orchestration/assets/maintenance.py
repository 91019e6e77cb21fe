"""Upkeep of the lake as assets: retention per policy and compaction + VACUUM. Each
materialization's metadata says what was removed, so the Dagster UI is the operator's log.
The workflows are imported where the assets run: the code server loads these definitions and
must not import deltalake, pyarrow and DuckDB with them."""

from datetime import timedelta

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from lakepulse.core.settings import BRONZE_TABLES, RetentionPolicy
from orchestration.resources import LakepulseResource

BRONZE_KEYS = [AssetKey(["raw", table]) for table in BRONZE_TABLES]
RETENTION_KEY = AssetKey(["maintenance", "retention"])
REBUILD_NEEDED = "rebuild_needed"
"""Metadata of a retention materialization: events were dropped, the marts must be rebuilt
from bronze (``retention_rebuild_sensor`` requests that run)."""
OWNER = "team:data-platform"


@asset(
    key=RETENTION_KEY,
    deps=[AssetKey(["landing", "log"]), *BRONZE_KEYS, AssetKey(["fct_experiment_snapshots"])],
    group_name="maintenance",
    owners=[OWNER],
    description="Drops what is older than its policy (LAKEPULSE_RETENTION_<NAME>_DAYS): bronze "
    "event-date partitions, rejected events, loaded landing files, dlt's load records and old "
    "experiment snapshots. When events were dropped (incremental models would keep them), "
    "retention_rebuild_sensor requests a run of replay_marts: every model rebuilt from bronze, "
    "then published, with the blocking mart checks between them. Metadata: what was removed "
    "per table, and rebuild_needed.",
)
def retention(context: AssetExecutionContext, lakepulse: LakepulseResource) -> MaterializeResult:
    from lakepulse.operations.retention import apply_retention, rebuild_needed

    policy = RetentionPolicy.from_env()
    removed = apply_retention(lakepulse.settings, policy)
    context.log.info(f"retention: {removed}")
    metadata: dict = {
        "policy_days": MetadataValue.json(vars(policy)),
        REBUILD_NEEDED: rebuild_needed(removed),
    }
    for name, result in removed.items():
        metadata[name] = MetadataValue.json(result)
    return MaterializeResult(metadata=metadata)


@asset(
    key=AssetKey(["maintenance", "compaction"]),
    deps=BRONZE_KEYS,
    group_name="maintenance",
    owners=[OWNER],
    description="OPTIMIZE bronze's small files (one per load and partition) into large ones, "
    "then VACUUM files no version of the last 7 days needs.",
)
def compaction(context: AssetExecutionContext, lakepulse: LakepulseResource) -> MaterializeResult:
    from lakepulse.operations.compaction import compact_and_vacuum

    compacted, vacuumed = compact_and_vacuum(lakepulse.settings, timedelta(days=7))
    return MaterializeResult(
        metadata={
            "compacted": MetadataValue.json(compacted),
            "files_vacuumed": MetadataValue.json(vacuumed),
        }
    )
