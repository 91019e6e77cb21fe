"""What an analyst asks of an experiment from the terminal: where it stands now (the latest
snapshot of every arm and metric) and how it got there (a PNG of the lift and its
always-valid confidence sequence over the snapshots)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from lakepulse.analytics.experiments import lift_bounds
from lakepulse.core.settings import Settings
from lakepulse.warehouse.replica import explorer

RESULT_COLUMNS = [
    "variation_id",
    "metric",
    "users",
    "mean",
    "relative_lift",
    "always_valid_relative_ci_low",
    "always_valid_relative_ci_high",
    "always_valid_p_value",
    "p_value",
    "srm_p_value",
    "decision",
]


def _query(settings: Settings, sql: str, params: list) -> pd.DataFrame:
    conn, _ = explorer(settings)
    try:
        return conn.execute(sql, params).df()
    finally:
        conn.close()


def current_results(settings: Settings, experiment_id: str, tenant_id: str) -> pd.DataFrame:
    return _query(
        settings,
        f"select {', '.join(RESULT_COLUMNS)} from marts.mart_experiment_results "
        "where experiment_id = ? and tenant_id = ? order by metric, not is_control, variation_id",
        [experiment_id, tenant_id],
    )


def history(settings: Settings, experiment_id: str, tenant_id: str, metric: str) -> pd.DataFrame:
    return _query(
        settings,
        "select snapshot_at, variation_id, metric, absolute_lift, always_valid_ci_low, "
        "always_valid_ci_high, absolute_ci_low, absolute_ci_high, alpha "
        "from marts.fct_experiment_snapshots "
        "where experiment_id = ? and tenant_id = ? and metric = ? and not is_control "
        "order by snapshot_at",
        [experiment_id, tenant_id, metric],
    )


def plot_history(frame: pd.DataFrame, title: str, path: Path) -> Path:
    """Lift with the always-valid sequence (shaded) and the fixed-horizon interval (dashed):
    the dashed band is the one that misleads when you look every minute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    for variation, arm in frame.groupby("variation_id"):
        line = ax.plot(arm["snapshot_at"], arm["absolute_lift"], label=f"{variation}: lift")[0]
        ax.fill_between(
            arm["snapshot_at"],
            arm["always_valid_ci_low"],
            arm["always_valid_ci_high"],
            color=line.get_color(),
            alpha=0.2,
            label=f"{variation}: always-valid {1 - arm['alpha'].iloc[-1]:.0%} sequence",
        )
        ax.plot(
            arm["snapshot_at"],
            arm["absolute_ci_low"],
            "--",
            color=line.get_color(),
            lw=0.8,
            label=f"{variation}: fixed-horizon interval (misleads when peeking)",
        )
        ax.plot(arm["snapshot_at"], arm["absolute_ci_high"], "--", color=line.get_color(), lw=0.8)
    ax.axhline(0, color="black", lw=0.8)
    # Intervals are clipped to what the lift can be (a difference of two proportions lies in
    # [-1, 1]): a band that reaches such a limit is drawn against it.
    low, high = lift_bounds(frame["metric"].iloc[0], None)["absolute"]
    bands = frame[
        ["always_valid_ci_low", "always_valid_ci_high", "absolute_ci_low", "absolute_ci_high"]
    ]
    for limit in (low, high):
        if math.isfinite(limit) and (bands == limit).to_numpy().any():
            ax.axhline(limit, color="grey", lw=0.8, ls=":", label=f"limit of the lift ({limit:+g})")
    ax.set_title(title)
    ax.set_ylabel("absolute lift vs control")
    ax.legend(loc="best", fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
