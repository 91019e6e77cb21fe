"""Serving layer: the marts published to PostgreSQL for BI tools. The publish is imported
where the asset runs: the code server loads these definitions and must not import DuckDB and
psycopg with them."""

from collections.abc import Iterable

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from orchestration.resources import LakepulseResource

PUBLISH_FIRST = ("dagster/priority", "1")
"""Step priority of the publish and the suites that gate it: ahead of steps as ready as they."""


def build_publish_asset(pg_url: str, served: Iterable[str]):
    """The publish of the ``served`` marts (their YAML's ``meta: publish:``), downstream of each."""

    @asset(
        key=AssetKey(["postgres", "marts"]),
        deps=[AssetKey([mart]) for mart in served],
        group_name="serving",
        kinds={"postgres"},
        owners=["team:data-platform"],
        description="Every mart copied to PostgreSQL schema `marts` and swapped in atomically, "
        "with tenant row-level security and a read-only BI role (LAKEPULSE_PG_URL).",
        # Before the trigger firing, which reads the replica and need not wait for PostgreSQL:
        # BI sees a run's marts a few seconds sooner (the run's other steps are ordered by
        # their dependencies alone).
        op_tags={"lakepulse/stage": "publish", PUBLISH_FIRST[0]: PUBLISH_FIRST[1]},
    )
    def published_marts(
        context: AssetExecutionContext, lakepulse: LakepulseResource
    ) -> MaterializeResult:
        from lakepulse.warehouse.publish import publish

        result = publish(lakepulse.settings, pg_url)
        context.log.info(
            f"published {len(result.rows)} marts in {result.seconds:.2f} s "
            f"({len(result.deltas)} as deltas, {len(result.unchanged)} unchanged)"
        )
        return MaterializeResult(
            metadata={
                "rows": MetadataValue.json(result.rows),
                "seconds": round(result.seconds, 3),
                "skipped": MetadataValue.json(result.skipped),
                "unchanged": MetadataValue.json(result.unchanged),
                "deltas": MetadataValue.json(result.deltas),
            }
        )

    return published_marts
