"""Per tenant x trigger x arm: users fired, conversion, orders and revenue within each
trigger's `measure_days` after each user's first firing, and on the treatment row the lift
over the holdout with its always-valid confidence sequence, p-value and decision.

The per-user windows are aggregated in DuckDB (only a few sums per arm reach Python); the
statistics are those of mart_experiment_results (`lakepulse/analytics/experiment_stats.py`), applied by
`lakepulse/triggers/impact.py`. Holdout shares and measure_days come from the running triggers
file (`trigger_plans`). Firings without a user (tenant-level triggers) are not measured here.
"""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa

from lakepulse.triggers import impact

SCHEMA = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("trigger", pa.string()),
        ("arm", pa.string()),
        ("measure_days", pa.int64()),
        ("planned_holdout", pa.float64()),
        ("users", pa.int64()),
        ("converted_users", pa.int64()),
        ("conversion_rate", pa.float64()),
        ("orders", pa.int64()),
        ("revenue", pa.float64()),
        ("revenue_per_user", pa.float64()),
        ("holdout_users", pa.int64()),
        ("conversion_lift", pa.float64()),
        ("conversion_relative_lift", pa.float64()),
        ("conversion_ci_low", pa.float64()),
        ("conversion_ci_high", pa.float64()),
        ("conversion_p_value", pa.float64()),
        ("revenue_lift", pa.float64()),
        ("revenue_relative_lift", pa.float64()),
        ("revenue_ci_low", pa.float64()),
        ("revenue_ci_high", pa.float64()),
        ("revenue_p_value", pa.float64()),
        ("srm_p_value", pa.float64()),
        ("decision", pa.string()),
        ("computed_at", pa.timestamp("us", tz="UTC")),
    ]
)

ARM_SUMS = """
with first_firings as (
    select tenant_id, trigger, user_id, arg_min(arm, fired_at) as arm, min(fired_at) as fired_at
    from trigger_impact_firings
    where user_id is not null
    group by tenant_id, trigger, user_id
),
windows as (
    select
        f.tenant_id, f.trigger, f.user_id, f.arm,
        coalesce(p.measure_days, {default_days}) as measure_days,
        f.fired_at,
        f.fired_at + to_days(coalesce(p.measure_days, {default_days})) as window_end
    from first_firings as f
    left join trigger_impact_plans as p using (trigger)
),
per_user as (
    select
        w.tenant_id, w.trigger, w.arm, w.measure_days, w.user_id,
        count(o.order_id) as orders,
        coalesce(sum(o.revenue), 0) as revenue
    from windows as w
    left join trigger_impact_orders as o
        on o.tenant_id = w.tenant_id
        and o.user_id = w.user_id
        and o.ordered_at >= w.fired_at
        and o.ordered_at < w.window_end
    group by all
)
select
    tenant_id, trigger, arm, max(measure_days) as measure_days,
    count(*) as users,
    count(*) filter (where orders > 0) as converted,
    sum(orders) as orders,
    sum(revenue)::double as revenue,
    sum(revenue * revenue)::double as revenue_sq
from per_user
group by tenant_id, trigger, arm
order by tenant_id, trigger, arm
"""


def model(dbt, session):
    dbt.config(materialized="table")
    dbt.source("triggers", "firings").create_view("trigger_impact_firings", True)
    dbt.ref("stg_orders").create_view("trigger_impact_orders", True)
    plans = impact.trigger_plans(os.environ.get("LAKEPULSE_HOME", "../.lakepulse"))
    plan_schema = pa.schema(
        [("trigger", pa.string()), ("holdout", pa.float64()), ("measure_days", pa.int64())]
    )
    session.register("trigger_impact_plans", pa.Table.from_pylist(plans, schema=plan_schema))
    try:
        sums = session.sql(ARM_SUMS.format(default_days=impact.DEFAULT_MEASURE_DAYS)).df()
    finally:
        # The views live in the warehouse file: left behind, a view over delta_scan makes every
        # other reader of the file (erasure's sweep, ad-hoc tools) try to download the extension.
        session.execute("drop view if exists trigger_impact_firings")
        session.execute("drop view if exists trigger_impact_orders")
        session.unregister("trigger_impact_plans")
    holdouts = {p["trigger"]: p["holdout"] for p in plans}
    computed_at = pd.Timestamp.now(tz="UTC").to_pydatetime()
    rows = []
    for _, group in sums.groupby(["tenant_id", "trigger"], sort=True):
        arms = group.to_dict("records")
        for row in impact.analyse(arms, holdouts.get(arms[0]["trigger"])):
            rows.append(
                {**{k: impact.finite(v) for k, v in row.items()}, "computed_at": computed_at}
            )
    return pa.Table.from_pylist(rows, schema=SCHEMA)
