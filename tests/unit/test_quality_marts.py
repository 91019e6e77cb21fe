"""The mart suites catch what a BI user would take for a bug, and pass on sound marts."""

from itertools import pairwise

import pandas as pd

from quality.marts import check_cohort_retention, check_conversion_windows, check_funnel_conversion


def funnel(users: list[int]) -> pd.DataFrame:
    n = len(users)
    return pd.DataFrame(
        {
            "tenant_id": ["t"] * n,
            "funnel_id": ["f"] * n,
            "entry_date": [pd.Timestamp("2026-11-22")] * n,
            "channel": ["direct"] * n,
            "device_class": ["mobile"] * n,
            "step_number": list(range(1, n + 1)),
            "users": users,
            "step_conversion": [1.0] + [b / a for a, b in pairwise(users)],
            "overall_conversion": [u / users[0] for u in users],
        }
    )


def test_a_funnel_that_never_grows_passes_and_one_that_grows_fails():
    assert check_funnel_conversion(funnel([100, 40, 10])).success
    result = check_funnel_conversion(funnel([100, 40, 50]))
    assert not result.success
    failed = {f.expectation: f.unexpected_count for f in result.failures}
    assert failed == {
        "expect_column_pair_values_a_to_be_greater_than_b": 1,  # step 3 has more than step 2
        "expect_column_values_to_be_between": 1,  # so its step conversion is 1.25
    }


def test_retention_period_zero_must_be_everyone():
    good = pd.DataFrame({"period_number": [0, 1], "user_retention": [1.0, 0.3]})
    bad = pd.DataFrame({"period_number": [0, 1], "user_retention": [0.9, 0.3]})
    assert check_cohort_retention(good).success
    assert not check_cohort_retention(bad).success


def test_conversion_rates_stay_in_range_and_converters_never_exceed_visitors():
    good = pd.DataFrame(
        {"visitors": [10, 0], "converting_visitors": [2, 0], "conversion_rate": [0.2, None]}
    )
    bad = pd.DataFrame({"visitors": [10], "converting_visitors": [12], "conversion_rate": [1.2]})
    assert check_conversion_windows(good).success
    result = check_conversion_windows(bad)
    assert {f.expectation for f in result.failures} == {
        "expect_column_values_to_be_between",
        "expect_column_pair_values_a_to_be_greater_than_b",
    }


def test_a_mart_is_checked_through_the_connection_its_owner_keeps_open(tmp_path):
    """The pipeline worker keeps the warehouse open (DuckDB opens a file once a process): the
    suite reads the mart through that connection, rows not yet checkpointed included."""
    import duckdb

    from lakepulse.core.settings import Settings
    from quality.marts import check_mart

    settings = Settings.from_env({"LAKEPULSE_HOME": str(tmp_path)})
    warehouse = duckdb.connect(str(tmp_path / "wh.duckdb"))
    try:
        warehouse.execute("set checkpoint_threshold = '1GB'")
        warehouse.execute("create schema marts")
        warehouse.execute(
            "create table marts.mart_conversion_windows as select "
            "timestamp '2026-12-01 10:00' as window_end_at, 10 as visitors, "
            "4 as converting_visitors, 0.4 as conversion_rate"
        )
        assert check_mart(settings, "mart_conversion_windows", connection=warehouse).success
        warehouse.execute(  # more converting visitors than visitors, in the log only
            "insert into marts.mart_conversion_windows values "
            "(timestamp '2026-12-01 10:05', 10, 12, 1.2)"
        )
        result = check_mart(settings, "mart_conversion_windows", connection=warehouse)
        assert not result.success and result.rows_checked == 2
        assert warehouse.execute("select count(*) from marts.mart_conversion_windows").fetchone()
    finally:
        warehouse.close()
