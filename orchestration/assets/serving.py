"""Serving layer: the marts published to PostgreSQL for BI tools."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from lakepulse.warehouse.publish import MARTS, publish
from orchestration.resources import LakepulseResource


def build_publish_asset(pg_url: str):
    @asset(
        key=AssetKey(["postgres", "marts"]),
        deps=[AssetKey([mart]) for mart in MARTS],
        group_name="serving",
        kinds={"postgres"},
        owners=["team:data-platform"],
        description="Every mart copied to PostgreSQL schema `marts` and swapped in atomically, "
        "with tenant row-level security and a read-only BI role (LAKEPULSE_PG_URL).",
        op_tags={"lakepulse/stage": "publish"},
    )
    def published_marts(
        context: AssetExecutionContext, lakepulse: LakepulseResource
    ) -> MaterializeResult:
        result = publish(lakepulse.settings, pg_url)
        context.log.info(f"published {len(result.rows)} marts in {result.seconds:.2f} s")
        return MaterializeResult(
            metadata={
                "rows": MetadataValue.json(result.rows),
                "seconds": round(result.seconds, 3),
                "skipped": MetadataValue.json(result.skipped),
            }
        )

    return published_marts
