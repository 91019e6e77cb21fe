"""Asset checks wrapping the great-expectations suites in ``quality/``.

Blocking: when bronze fails its suite, the dbt models downstream do not build in that run, so
a bad load never reaches the marts BI reads.
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from ingestion.tenants import TenantRegistry
from lakepulse.config import Settings
from lakepulse.duck import connect
from orchestration.resources import LakepulseResource

BRONZE_EVENTS = ["raw", "events"]


def latest_load(settings: Settings):
    """The rows of the most recent load: what this run added (bronze is upserted, so the
    table-wide key uniqueness is the loader's guarantee; this catches what a load brings)."""
    conn = connect()
    try:
        path = settings.bronze_events_path
        return conn.sql(
            f"select * from delta_scan('{path}') "
            f"where loaded_at = (select max(loaded_at) from delta_scan('{path}'))"
        ).df()
    finally:
        conn.close()


@asset_check(
    asset=BRONZE_EVENTS,
    name="bronze_events_quality",
    blocking=True,
    description="great-expectations suite quality.bronze: keys present and unique, known event "
    "types and tenants, non-negative revenue, sane timestamps. Checks the latest load.",
)
def bronze_events_quality(
    context: AssetCheckExecutionContext, lakepulse: LakepulseResource
) -> AssetCheckResult:
    from quality.bronze import check_events

    settings = lakepulse.settings
    df = latest_load(settings)
    result = check_events(df, TenantRegistry(settings.tenants_file).tenants())
    context.log.info(result.summary())
    return AssetCheckResult(
        passed=result.success,
        severity=AssetCheckSeverity.ERROR,
        description=result.summary(),
        metadata={
            "rows_checked": result.rows_checked,
            "failed_expectations": len(result.failures),
            "failures": MetadataValue.json(
                [
                    {
                        "expectation": f.expectation,
                        "column": f.column,
                        "failing_rows": f.unexpected_count,
                        "sample": f.sample,
                    }
                    for f in result.failures
                ]
            ),
        },
    )
