"""The per-snapshot experiment analysis (lakepulse.analytics.experiments) without dbt: every
arm against the control with the gbstats-exact statistics, intervals clipped to what the
metric allows, the running always-valid values and their restart when settings change, and
the snapshot table's schema read from the model's YAML contract."""

from datetime import UTC, datetime

import pytest
import yaml

from lakepulse.analytics import experiment_stats as stats
from lakepulse.analytics import experiments
from lakepulse.core.settings import DBT_PROJECT_DIR

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def arm(variation: str, n: int, sum_y: float, sum_y2: float, **extra) -> dict:
    return {
        "tenant_id": "t",
        "experiment_id": "e",
        "variation_id": variation,
        "metric": "revenue",
        "is_control": variation == "control",
        "planned_weight": 0.5,
        "excluded_users": 0,
        "n": n,
        "sum_y": sum_y,
        "sum_y2": sum_y2,
        "sum_x": 0.0,
        "sum_x2": 0.0,
        "sum_xy": 0.0,
        "alpha": 0.05,
        "sequential_n_star": 1000.0,
        "revenue_cap": None,
    } | extra


# GrowthBook's reference case (gbstats' unit tests; see tests/unit/test_experiment_stats.py).
GROWTHBOOK = [
    arm("control", 3000, 1396.87, 52377.9767, planned_weight=3000.0),
    arm("green", 3461, 2422.7, 134698.29, planned_weight=3461.0),
]


def by_variation(rows: list[dict]) -> dict[str, dict]:
    return {row["variation_id"]: row for row in rows}


def test_each_arm_gets_the_gbstats_results_against_the_control():
    rows = by_variation(experiments.snapshot(GROWTHBOOK, {}, NOW))
    control, green = rows["control"], rows["green"]
    assert control["is_control"] and control.get("absolute_lift") is None
    # GrowthBook's values (gbstats' unit tests) and, for the fixed-horizon p-value, Welch's t
    # worked out by hand: lift 2422.7/3461 - 1396.87/3000 = 0.23438, se 0.12983, df ~6330.
    assert round(green["absolute_lift"], 5) == 0.23438
    assert round(green["p_value"], 4) == 0.0711
    assert round(green["sequential_absolute_ci_low"], 5) == -0.17909  # GrowthBook's value
    assert round(green["sequential_absolute_ci_high"], 5) == 0.64784
    assert round(green["sequential_relative_ci_high"], 5) == 1.56516
    assert round(green["sequential_relative_ci_low"], 5) == -0.55844
    # One snapshot: the always-valid values are this snapshot's, and the sequence straddles 0.
    assert green["snapshots"] == 1
    assert green["always_valid_ci_low"] == green["sequential_absolute_ci_low"]
    assert green["always_valid_p_value"] == green["sequential_p_value"]
    assert green["decision"] == "continue" and control["decision"] is None
    assert green["snapshot_at"] == NOW


def test_intervals_are_clipped_to_what_the_metric_allows():
    # Three users an arm: the conversion intervals run past +-1, the relative ones below -1.
    conversion = [
        arm("control", 3, 2, 2, metric="conversion"),
        arm("green", 3, 1, 1, metric="conversion"),
    ]
    [green] = [r for r in experiments.snapshot(conversion, {}, NOW) if not r["is_control"]]
    unclipped = stats.compare(
        stats.Moments(3, 2, 2, proportion=True),
        stats.Moments(3, 1, 1, proportion=True),
        relative=False,
        n_star=1000,
    )
    # Worked out by hand: lift -1/3, variance 2/27 + 2/27 = 4/27; Welch's df 4 gives the fixed
    # interval -1/3 -+ 2.776 * 0.3849; the sequence (N* 1000, n 6) is -1/3 -+ 4.4362.
    assert round(unclipped.variance, 6) == round(4 / 27, 6)
    assert (round(unclipped.sequential_ci_low, 4), round(unclipped.sequential_ci_high, 4)) == (
        -4.7696,
        4.1029,
    )
    assert round(unclipped.ci_low, 4) == -1.4020
    assert (green["sequential_absolute_ci_low"], green["sequential_absolute_ci_high"]) == (-1, 1)
    assert green["absolute_ci_low"] == -1.0
    assert (green["always_valid_ci_low"], green["always_valid_ci_high"]) == (-1, 1)
    assert green["sequential_relative_ci_low"] == -1.0
    assert green["always_valid_relative_ci_low"] == -1.0
    assert green["absolute_lift"] == pytest.approx(-1 / 3)  # the estimate itself is untouched

    # Capped revenue: a difference of means of values in [0, cap] lies in [-cap, cap].
    capped = [
        arm("control", 3, 10, 100, metric="capped_revenue", revenue_cap=10.0),
        arm("green", 3, 0, 0, metric="capped_revenue", revenue_cap=10.0),
    ]
    [green] = [r for r in experiments.snapshot(capped, {}, NOW) if not r["is_control"]]
    assert green["sequential_absolute_ci_low"] == -10.0
    # Revenue without a cap: unbounded, only the relative lift is bounded below.
    revenue = [{**a, "metric": "revenue", "revenue_cap": None} for a in capped]
    [green] = [r for r in experiments.snapshot(revenue, {}, NOW) if not r["is_control"]]
    assert green["sequential_absolute_ci_low"] < -10.0
    assert experiments.lift_bounds("orders", None) == {
        "absolute": (-float("inf"), float("inf")),
        "relative": (-1.0, float("inf")),
    }


def test_running_values_carry_over_and_restart_when_the_settings_change():
    first = by_variation(experiments.snapshot(GROWTHBOOK, {}, NOW))["green"]
    key = ("t", "e", "green", "revenue")
    tighter = first | {"always_valid_ci_low": 0.01, "always_valid_p_value": 0.001}
    second = by_variation(experiments.snapshot(GROWTHBOOK, {key: tighter}, NOW))["green"]
    assert second["snapshots"] == 2
    assert second["always_valid_ci_low"] == 0.01  # the running intersection
    assert second["always_valid_p_value"] == 0.001  # the running minimum
    assert second["decision"] == "ship"

    # The experiment is registered with another N*: the earlier sequence no longer applies.
    registered = [a | {"sequential_n_star": 20000.0} for a in GROWTHBOOK]
    third = by_variation(experiments.snapshot(registered, {key: second}, NOW))["green"]
    assert third["snapshots"] == 1
    assert third["always_valid_ci_low"] == third["sequential_absolute_ci_low"] < 0.01
    assert third["decision"] == "continue"


def test_users_in_an_unplanned_arm_break_the_split():
    arms = [*GROWTHBOOK, arm("rogue", 5, 1, 1, planned_weight=0.0)]
    rows = by_variation(experiments.snapshot(arms, {}, NOW))
    assert {r["srm_p_value"] for r in rows.values()} == {0.0}
    assert rows["green"]["decision"] == "invalid: SRM"
    assert rows["control"]["decision"] == "invalid: SRM"


def test_the_snapshot_schema_is_the_models_yaml_contract():
    schema = experiments.snapshot_schema()
    [path] = DBT_PROJECT_DIR.glob("models/**/fct_experiment_snapshots.yml")
    [model] = yaml.safe_load(path.read_text())["models"]
    assert schema.names == [column["name"] for column in model["columns"]]
    assert str(schema.field("snapshot_at").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("users").type) == "int64"
    # Every value the analysis writes has a column, and every column is written.
    rows = experiments.snapshot(GROWTHBOOK, {}, NOW)
    assert set().union(*rows) == set(schema.names)
