"""Asset checks: the great-expectations suites in ``quality/`` and freshness.

Blocking: when bronze fails its suite, the dbt models downstream do not build in that run, so
a bad load never reaches the marts BI reads; when a key mart fails its suite, the publish to
PostgreSQL does not run, so BI keeps the last good tables.

The suites run where the checks run: the code server loads these definitions, and
``quality``'s modules import great-expectations, pandas and DuckDB only when a suite runs.
"""

import warnings
from collections.abc import Mapping
from datetime import timedelta

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    DefaultSensorStatus,
    MetadataValue,
    asset_check,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
)

from orchestration.assets.serving import PUBLISH_FIRST
from orchestration.resources import LakepulseResource

BRONZE_EVENTS = ["raw", "events"]


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
    from quality.bronze import check_latest_load

    result = check_latest_load(lakepulse.settings)
    context.log.info(result.summary())
    return check_result(result)


def check_result(result) -> AssetCheckResult:
    """A quality result as Dagster shows it: pass/fail, and per failed expectation the count
    of failing rows and a sample of them."""
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


def mart_quality_check(mart: str) -> AssetChecksDefinition:
    @asset_check(
        asset=AssetKey([mart]),
        name=f"{mart}_quality",
        blocking=True,
        description=f"great-expectations suite quality.marts for {mart} (rates in [0, 1], "
        "funnels never grow, period 0 = 100 %). Blocking: a failure stops the publish.",
        op_tags=dict([PUBLISH_FIRST]),
    )
    def check(lakepulse: LakepulseResource) -> AssetCheckResult:
        from quality.marts import check_mart

        return check_result(check_mart(lakepulse.settings, mart))

    return check


def build_mart_quality_checks() -> list[AssetChecksDefinition]:
    from quality.marts import MART_SUITES

    return [mart_quality_check(mart) for mart in MART_SUITES]


FRESHNESS_SENSOR_INTERVAL_S = 120


# Dagster 1.13 marks these builders as superseded by FreshnessPolicy. We keep checks: they run
# as ordinary asset checks (testable in process), keep a pass/fail history per mart, and need
# nothing beyond the sensor below.
_SUPERSEDED = {"action": "ignore", "message": ".*superseded.*"}


def build_freshness_checks(stale_after_s: Mapping[str, float]) -> list[AssetChecksDefinition]:
    """A served mart not built for longer than its tier allows (``stale_after_s``: mart ->
    seconds, :attr:`~lakepulse.warehouse.tiers.Tier.stale_after_s`) is shown stale, a warning on
    its check: five minutes for the live and session marts, the daily tier's ten for its own."""
    marts_by_bound: dict[float, list[AssetKey]] = {}
    for mart, bound_s in stale_after_s.items():
        marts_by_bound.setdefault(bound_s, []).append(AssetKey([mart]))
    with warnings.catch_warnings():
        warnings.filterwarnings(**_SUPERSEDED)
        return [
            check
            for bound_s, marts in marts_by_bound.items()
            for check in build_last_update_freshness_checks(
                assets=marts, lower_bound_delta=timedelta(seconds=bound_s)
            )
        ]


# The metadata keys of Dagster's own last-update freshness check (1.13): the sensor below reads
# the fresh-until time of a check's latest evaluation to decide when to run it again.
_FRESHNESS_PARAMS = "dagster/freshness_params"
_LOWER_BOUND = "dagster/freshness_lower_bound_timestamp"
_FRESH_UNTIL = "dagster/fresh_until_timestamp"
_LAST_UPDATED = "dagster/last_updated_timestamp"


def fresh_when_built(mart: str, built_at: float, stale_after_s: float) -> AssetCheckEvaluation:
    """The evaluation the freshness check of ``mart`` gives right after the pipeline worker
    materialized it at ``built_at`` (epoch seconds): passed, fresh until ``stale_after_s`` on
    (its tier's bound, as :func:`build_freshness_checks` was given it). The worker reports it
    with the materialization, so the freshness sensor finds every mart fresh and starts no run
    of its own (a process loading these definitions, beside the worker); once the worker
    stops, the last deadline passes and the sensor runs the check itself, which then warns."""
    return AssetCheckEvaluation(
        asset_key=AssetKey([mart]),
        check_name="freshness_check",
        passed=True,
        description=f"Materialized by the pipeline worker; fresh for {stale_after_s / 60:g} minutes.",
        metadata={
            _FRESHNESS_PARAMS: MetadataValue.json(
                {"timezone": "UTC", "lower_bound_delta_seconds": float(stale_after_s)}
            ),
            _LOWER_BOUND: MetadataValue.timestamp(built_at - stale_after_s),
            _FRESH_UNTIL: MetadataValue.timestamp(built_at + stale_after_s),
            _LAST_UPDATED: MetadataValue.timestamp(built_at),
        },
    )


def build_freshness_sensor(checks: list[AssetChecksDefinition]):
    with warnings.catch_warnings():
        warnings.filterwarnings(**_SUPERSEDED)
        return build_sensor_for_freshness_checks(
            freshness_checks=checks,
            # Each evaluation is a run of its own (a process that imports the code location,
            # ~5 s of CPU beside the minute's runs): every two minutes is soon enough for a
            # mart five minutes behind.
            minimum_interval_seconds=FRESHNESS_SENSOR_INTERVAL_S,
            name="freshness_checks_sensor",
            default_status=DefaultSensorStatus.RUNNING,
        )
