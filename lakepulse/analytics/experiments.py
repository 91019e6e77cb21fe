"""The per-snapshot analysis of every experiment: from the sufficient statistics of each arm
(`int_experiment_arm_moments`) to the rows of `fct_experiment_snapshots`.

The dbt Python model `fct_experiment_snapshots` only reads its inputs and writes what
:func:`snapshot` returns; everything decided about an experiment is here, so it is unit-tested
without dbt. The statistics themselves are in :mod:`experiment_stats` (gbstats-exact); this
module adds what an experiment needs around them:

- every arm against the control, for every metric, with CUPED;
- intervals clipped to what the metric allows (:func:`lift_bounds`): a difference of two
  proportions lies in [-1, 1], a capped revenue's in [-cap, cap], and a relative lift of a
  metric that is never negative is at least -1; revenue and order differences are unbounded.
  Clipping only removes values no experiment can produce, so it keeps every guarantee;
- the always-valid columns carried across snapshots (running minimum p-value, running
  intersection of the sequences), restarted when the experiment's settings change (alpha, N*,
  control), because a sequence is valid only for the settings it was built with;
- the sample-ratio-mismatch test and the decision.

The table's columns and types come from the model's YAML contract (:func:`snapshot_schema`),
the one place they are written down.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from lakepulse.analytics import experiment_stats as stats
from lakepulse.core.settings import DBT_PROJECT_DIR

KEY = ["tenant_id", "experiment_id", "variation_id", "metric"]

# What a snapshot carries forward to the next one.
RUNNING = [
    "always_valid_p_value",
    "always_valid_ci_low",
    "always_valid_ci_high",
    "always_valid_relative_ci_low",
    "always_valid_relative_ci_high",
    "snapshots",
]
# Settings a running sequence was built with: when one changes, the sequence starts again.
SETTINGS = ["alpha", "sequential_n_star", "is_control"]

MODEL = "fct_experiment_snapshots"

_ARROW_TYPES = {
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "varchar": pa.string(),
    "boolean": pa.bool_(),
    "double": pa.float64(),
    "bigint": pa.int64(),
}


@cache
def snapshot_schema(project_dir: Path = DBT_PROJECT_DIR) -> pa.Schema:
    """The Arrow schema of `fct_experiment_snapshots`, read from the model's YAML (each column's
    `data_type`), so that the contract analysts read and the table written cannot drift."""
    [path] = sorted(project_dir.glob(f"models/**/{MODEL}.yml"))
    [model] = [m for m in yaml.safe_load(path.read_text())["models"] if m["name"] == MODEL]
    try:
        return pa.schema([(c["name"], _ARROW_TYPES[c["data_type"]]) for c in model["columns"]])
    except KeyError as missing:
        raise ValueError(
            f"{path}: every column needs a data_type of {sorted(_ARROW_TYPES)}; "
            f"missing or unknown: {missing}"
        ) from None


def snapshot(
    arms: Iterable[Mapping[str, Any]],
    previous: Mapping[tuple, Mapping[str, Any]],
    snapshot_at: datetime,
) -> list[dict]:
    """This run's rows: every (tenant, experiment, metric) analysed, with the running values of
    the `previous` snapshot (keyed by :data:`KEY`) carried forward."""
    groups: dict[tuple, list[dict]] = {}
    for arm in arms:
        groups.setdefault((arm["tenant_id"], arm["experiment_id"], arm["metric"]), []).append(
            dict(arm)
        )
    rows = []
    for key in sorted(groups):
        for row in analyse(groups[key]):
            carry_running(row, previous.get(tuple(row[k] for k in KEY)))
            rows.append({"snapshot_at": snapshot_at, **row})
    return rows


def lift_bounds(metric: str, revenue_cap: float | None) -> dict[str, tuple[float, float]]:
    """The values each kind of lift can take, per user metric (all four are never negative):
    `absolute` for a difference of means, `relative` for a difference over the control mean."""
    absolute = (-math.inf, math.inf)
    if metric == "conversion":
        absolute = (-1.0, 1.0)
    elif metric == "capped_revenue" and revenue_cap is not None and math.isfinite(revenue_cap):
        absolute = (-float(revenue_cap), float(revenue_cap))
    return {"absolute": absolute, "relative": (-1.0, math.inf)}


def analyse(arms: list[dict]) -> list[dict]:
    """One metric of one experiment for one tenant: every arm against the control."""
    proportion = arms[0]["metric"] == "conversion"
    post = {
        a["variation_id"]: stats.Moments(a["n"], a["sum_y"], a["sum_y2"], proportion) for a in arms
    }
    pre = {a["variation_id"]: stats.Moments(a["n"], a["sum_x"], a["sum_x2"]) for a in arms}
    srm_p = srm(arms)
    live = [a for a in arms if a["n"] > 0]
    theta = stats.cuped_theta(
        [post[a["variation_id"]] for a in live],
        [pre[a["variation_id"]] for a in live],
        [a["sum_xy"] for a in live],
    )
    control = next((a for a in arms if a["is_control"]), None)
    out = []
    for arm in arms:
        variation = arm["variation_id"]
        moments = post[variation]
        row = {
            "tenant_id": arm["tenant_id"],
            "experiment_id": arm["experiment_id"],
            "variation_id": variation,
            "metric": arm["metric"],
            "is_control": bool(arm["is_control"]),
            "planned_weight": float(arm["planned_weight"]),
            "users": int(arm["n"]),
            "excluded_users": int(arm["excluded_users"]),
            "mean": finite(moments.mean),
            "variance": finite(moments.variance),
            "srm_p_value": srm_p,
            "cuped_theta": theta,
            "alpha": float(arm["alpha"]),
            "sequential_n_star": float(arm["sequential_n_star"]),
        }
        if control is not None and not arm["is_control"]:
            row.update(versus_control(control, arm, post, pre, theta))
            clip(row, lift_bounds(arm["metric"], none_if_nan(arm.get("revenue_cap"))))
        out.append(row)
    return out


# The interval ends of each kind of lift, which clip() keeps within lift_bounds().
_INTERVALS = {
    "absolute": [
        "absolute_ci_low",
        "absolute_ci_high",
        "sequential_absolute_ci_low",
        "sequential_absolute_ci_high",
        "cuped_ci_low",
        "cuped_ci_high",
    ],
    "relative": [
        "relative_ci_low",
        "relative_ci_high",
        "sequential_relative_ci_low",
        "sequential_relative_ci_high",
    ],
}


def clip(row: dict, bounds: Mapping[str, tuple[float, float]]) -> None:
    """Clip every interval end of ``row`` to what its lift can be (the always-valid columns,
    built from the sequential ones, follow)."""
    for kind, columns in _INTERVALS.items():
        low, high = bounds[kind]
        for column in columns:
            if row.get(column) is not None:
                row[column] = min(max(row[column], low), high)


def versus_control(control: dict, arm: dict, post: dict, pre: dict, theta: float) -> dict:
    """A treatment arm against the control: Welch, sequential and CUPED, absolute and relative."""
    a, b = post[control["variation_id"]], post[arm["variation_id"]]
    options = {"alpha": float(arm["alpha"]), "n_star": float(arm["sequential_n_star"])}
    absolute = stats.compare(a, b, relative=False, **options)
    relative = stats.compare(a, b, relative=True, **options)
    adjusted_a = stats.cuped_adjust(a, pre[control["variation_id"]], control["sum_xy"], theta)
    adjusted_b = stats.cuped_adjust(b, pre[arm["variation_id"]], arm["sum_xy"], theta)
    cuped = stats.compare(adjusted_a, adjusted_b, relative=False, **options)
    row = {"control_users": int(a.n), "control_mean": finite(a.mean)}
    if absolute:
        row |= {
            "absolute_lift": absolute.lift,
            "absolute_ci_low": absolute.ci_low,
            "absolute_ci_high": absolute.ci_high,
            "p_value": absolute.p_value,
            "sequential_absolute_ci_low": absolute.sequential_ci_low,
            "sequential_absolute_ci_high": absolute.sequential_ci_high,
            "sequential_p_value": absolute.sequential_p_value,
        }
    if relative:
        row |= {
            "relative_lift": relative.lift,
            "relative_ci_low": relative.ci_low,
            "relative_ci_high": relative.ci_high,
            "sequential_relative_ci_low": relative.sequential_ci_low,
            "sequential_relative_ci_high": relative.sequential_ci_high,
        }
    if cuped and absolute:
        row |= {
            "cuped_absolute_lift": cuped.lift,
            "cuped_relative_lift": cuped.lift / a.mean if a.mean else None,
            "cuped_ci_low": cuped.ci_low,
            "cuped_ci_high": cuped.ci_high,
            "cuped_p_value": cuped.p_value,
            "cuped_variance_reduction": 1 - cuped.variance / absolute.variance,
        }
    return row


def carry_running(row: dict, before: Mapping[str, Any] | None) -> None:
    """Running minimum of the sequential p-value and running intersection of the sequences;
    the decision is taken on the running (always-valid) sequence of the absolute lift. A
    previous snapshot taken with other settings (alpha, N*, control) does not carry over."""
    before = {k: none_if_nan(v) for k, v in (before or {}).items()}
    if any(k in before and before[k] != row[k] for k in SETTINGS):
        before = {}
    row["snapshots"] = int(before.get("snapshots") or 0) + 1
    pairs = [
        ("always_valid_p_value", "sequential_p_value", min),
        ("always_valid_ci_low", "sequential_absolute_ci_low", max),
        ("always_valid_ci_high", "sequential_absolute_ci_high", min),
        ("always_valid_relative_ci_low", "sequential_relative_ci_low", max),
        ("always_valid_relative_ci_high", "sequential_relative_ci_high", min),
    ]
    for running, current, combine in pairs:
        values = [v for v in (before.get(running), row.get(current)) if v is not None]
        row[running] = combine(values) if values else None
    if row["is_control"]:
        row["decision"] = "invalid: SRM" if row["srm_p_value"] < stats.SRM_THRESHOLD else None
    else:
        row["decision"] = stats.decide(
            row["srm_p_value"], row["always_valid_ci_low"], row["always_valid_ci_high"]
        )


def srm(arms: list[dict]) -> float:
    """Sample-ratio-mismatch p-value of the users per arm against the planned split."""
    counts = [int(a["n"]) for a in arms]
    weights = [float(a["planned_weight"]) for a in arms]
    if any(c > 0 and w <= 0 for c, w in zip(counts, weights, strict=True)):
        return 0.0  # users in a variation that is not in the plan: the split is broken
    return stats.srm_p_value(counts, weights)


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def none_if_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value
