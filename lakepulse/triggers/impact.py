"""Does a trigger earn money? Its holdout, measured live with the experiment statistics.

A trigger with ``holdout: h`` keeps a deterministic share h of its users in the ``holdout``
arm: their firings are recorded but never delivered. ``mart_trigger_impact`` compares, per
tenant x trigger, the users of both arms over ``measure_days`` after each user's first firing:
conversion (share with an order) and revenue per user. The comparison is
:func:`lakepulse.experiment_stats.compare` with the holdout as control, so its always-valid
confidence sequence and p-value are the ones ``mart_experiment_results`` reports, and so is the
decision rule (:func:`lakepulse.experiment_stats.decide`): ``ship`` (keep the trigger: its
sequence for revenue per user lies above zero), ``stop`` (it costs money), ``continue``, or
``invalid: SRM`` when the arms' sizes contradict the holdout share.

The sequence is valid uniformly over time, so the current one may be read, and acted on, at
every minute's rebuild without inflating the error rate.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from lakepulse.analytics import experiment_stats as stats
from lakepulse.core.settings import DBT_PROJECT_DIR

ALPHA = 0.05
N_STAR = 5000.0
"""The confidence sequence's tuning: tightest around 5 000 users in both arms together."""
DEFAULT_MEASURE_DAYS = 7


def trigger_plans(home: str | Path) -> list[dict]:
    """Each trigger's ``holdout`` and ``measure_days``: from the last valid triggers file
    installed in ``home`` (``triggers/triggers.yml``), else from ``LAKEPULSE_TRIGGERS_FILE`` or
    the project's ``dbt_project/triggers.yml``."""
    candidates = [
        Path(home) / "triggers" / "triggers.yml",
        Path(os.environ.get("LAKEPULSE_TRIGGERS_FILE") or DBT_PROJECT_DIR / "triggers.yml"),
    ]
    for path in candidates:
        if path.exists():
            document = yaml.safe_load(path.read_text()) or {}
            return [
                {
                    "trigger": str(t["name"]),
                    "holdout": float(t.get("holdout") or 0.0),
                    "measure_days": int(t.get("measure_days") or DEFAULT_MEASURE_DAYS),
                }
                for t in document.get("triggers") or []
                if isinstance(t, dict) and t.get("name")
            ]
    return []


def analyse(arms: list[dict], holdout_share: float | None) -> list[dict]:
    """One tenant x trigger: ``arms`` hold each arm's sufficient statistics (users,
    converted, orders, revenue, revenue_sq); returns one row per arm, the treatment row with
    the lifts, their always-valid intervals and p-values, and the decision."""
    by_arm = {a["arm"]: a for a in arms}
    rows = []
    for arm in arms:
        n = int(arm["users"])
        rows.append(
            {
                "tenant_id": arm["tenant_id"],
                "trigger": arm["trigger"],
                "arm": arm["arm"],
                "measure_days": int(arm["measure_days"]),
                "planned_holdout": holdout_share,
                "users": n,
                "converted_users": int(arm["converted"]),
                "conversion_rate": arm["converted"] / n if n else None,
                "orders": int(arm["orders"]),
                "revenue": float(arm["revenue"]),
                "revenue_per_user": arm["revenue"] / n if n else None,
            }
        )
    treatment, holdout = by_arm.get("treatment"), by_arm.get("holdout")
    srm = _srm(treatment, holdout, holdout_share)
    for row in rows:
        row["srm_p_value"] = srm
        if row["arm"] == "treatment":
            row.update(_versus_holdout(treatment, holdout, srm))
    return rows


def _moments(arm: dict | None, metric: str) -> stats.Moments:
    if arm is None:
        return stats.Moments(0, 0.0, 0.0)
    if metric == "conversion":
        return stats.Moments(int(arm["users"]), float(arm["converted"]), 0.0, proportion=True)
    return stats.Moments(int(arm["users"]), float(arm["revenue"]), float(arm["revenue_sq"]))


def _versus_holdout(treatment: dict, holdout: dict | None, srm: float) -> dict:
    out: dict = {"holdout_users": int(holdout["users"]) if holdout else 0}
    for metric in ("conversion", "revenue"):
        control, test = _moments(holdout, metric), _moments(treatment, metric)
        estimate = stats.compare(control, test, relative=False, alpha=ALPHA, n_star=N_STAR)
        relative = stats.compare(control, test, relative=True, alpha=ALPHA, n_star=N_STAR)
        out[f"{metric}_lift"] = estimate.lift if estimate else None
        out[f"{metric}_relative_lift"] = relative.lift if relative else None
        out[f"{metric}_ci_low"] = estimate.sequential_ci_low if estimate else None
        out[f"{metric}_ci_high"] = estimate.sequential_ci_high if estimate else None
        out[f"{metric}_p_value"] = estimate.sequential_p_value if estimate else None
    out["decision"] = stats.decide(srm, out["revenue_ci_low"], out["revenue_ci_high"])
    return out


def _srm(treatment: dict | None, holdout: dict | None, holdout_share: float | None) -> float:
    if not holdout_share:
        return 1.0  # no planned holdout (or unknown): nothing to check against
    counts = [int(treatment["users"]) if treatment else 0, int(holdout["users"]) if holdout else 0]
    return stats.srm_p_value(counts, [1 - holdout_share, holdout_share])


def finite(value):
    return value if not isinstance(value, float) or math.isfinite(value) else None
