"""Every run's statistics of every experiment, kept forever (per tenant x experiment x variation
x metric x snapshot).

Why a history: an always-valid guarantee is about the whole sequence of looks. Keeping each
minute's result lets the reported always-valid p-value be the running minimum and the
confidence sequence the running intersection over all snapshots so far, which is what stays
valid when someone looks every minute. The formulas live in `lakepulse/experiment_stats.py`
(written out in its docstring); this model only feeds them the sufficient statistics from
`int_experiment_arm_moments` and carries the running values forward.

`full_refresh: false`: a `dbt build --full-refresh` (or the replay job) rebuilds every mart but
keeps this history, because it cannot be recomputed from the events.
"""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa

from lakepulse.analytics import experiment_stats as stats

KEY = ["tenant_id", "experiment_id", "variation_id", "metric"]

SCHEMA = pa.schema(
    [
        ("snapshot_at", pa.timestamp("us", tz="UTC")),
        ("tenant_id", pa.string()),
        ("experiment_id", pa.string()),
        ("variation_id", pa.string()),
        ("metric", pa.string()),
        ("is_control", pa.bool_()),
        ("planned_weight", pa.float64()),
        ("users", pa.int64()),
        ("excluded_users", pa.int64()),
        ("mean", pa.float64()),
        ("variance", pa.float64()),
        ("control_users", pa.int64()),
        ("control_mean", pa.float64()),
        ("absolute_lift", pa.float64()),
        ("absolute_ci_low", pa.float64()),
        ("absolute_ci_high", pa.float64()),
        ("p_value", pa.float64()),
        ("relative_lift", pa.float64()),
        ("relative_ci_low", pa.float64()),
        ("relative_ci_high", pa.float64()),
        ("sequential_absolute_ci_low", pa.float64()),
        ("sequential_absolute_ci_high", pa.float64()),
        ("sequential_relative_ci_low", pa.float64()),
        ("sequential_relative_ci_high", pa.float64()),
        ("sequential_p_value", pa.float64()),
        ("always_valid_p_value", pa.float64()),
        ("always_valid_ci_low", pa.float64()),
        ("always_valid_ci_high", pa.float64()),
        ("always_valid_relative_ci_low", pa.float64()),
        ("always_valid_relative_ci_high", pa.float64()),
        ("srm_p_value", pa.float64()),
        ("cuped_theta", pa.float64()),
        ("cuped_absolute_lift", pa.float64()),
        ("cuped_relative_lift", pa.float64()),
        ("cuped_ci_low", pa.float64()),
        ("cuped_ci_high", pa.float64()),
        ("cuped_p_value", pa.float64()),
        ("cuped_variance_reduction", pa.float64()),
        ("alpha", pa.float64()),
        ("sequential_n_star", pa.float64()),
        ("decision", pa.string()),
        ("snapshots", pa.int64()),
    ]
)

RUNNING = [
    "always_valid_p_value",
    "always_valid_ci_low",
    "always_valid_ci_high",
    "always_valid_relative_ci_low",
    "always_valid_relative_ci_high",
    "snapshots",
]


def model(dbt, session):
    dbt.config(materialized="incremental", full_refresh=False)
    arms = dbt.ref("int_experiment_arm_moments").df()
    previous: dict[tuple, dict] = {}
    if dbt.is_incremental:
        latest = session.sql(
            f"select {', '.join(KEY + RUNNING)} from {dbt.this} "
            f"qualify row_number() over (partition by {', '.join(KEY)} "
            "order by snapshot_at desc) = 1"
        ).df()
        previous = {tuple(r[k] for k in KEY): r for r in latest.to_dict("records")}
    snapshot_at = pd.Timestamp.now(tz="UTC").to_pydatetime()
    rows = []
    for _, group in arms.groupby(["tenant_id", "experiment_id", "metric"], sort=True):
        for row in analyse(group.to_dict("records")):
            carry_running(row, previous.get(tuple(row[k] for k in KEY)))
            rows.append({"snapshot_at": snapshot_at, **row})
    return pa.Table.from_pylist(rows, schema=SCHEMA)


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
        out.append(row)
    return out


def versus_control(control: dict, arm: dict, post: dict, pre: dict, theta: float) -> dict:
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


def carry_running(row: dict, before: dict | None) -> None:
    """Running minimum of the sequential p-value and running intersection of the sequences;
    the decision is taken on the running (always-valid) sequence of the absolute lift."""
    before = {k: none_if_nan(v) for k, v in (before or {}).items()}
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
    counts = [int(a["n"]) for a in arms]
    weights = [float(a["planned_weight"]) for a in arms]
    if any(c > 0 and w <= 0 for c, w in zip(counts, weights, strict=True)):
        return 0.0  # users in a variation that is not in the plan: the split is broken
    return stats.srm_p_value(counts, weights)


def finite(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def none_if_nan(value):
    return None if isinstance(value, float) and math.isnan(value) else value
