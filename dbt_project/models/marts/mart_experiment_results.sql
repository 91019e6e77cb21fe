-- The current state of every experiment: the latest snapshot of fct_experiment_snapshots per
-- tenant x experiment x variation x metric. The always-valid columns already fold in every
-- earlier snapshot (running minimum p-value, running intersection of the confidence
-- sequence), so this row may be read, and acted on, at any minute.

with

snapshots as (

    select * from {{ ref('fct_experiment_snapshots') }}

),

latest as (

    select *
    from snapshots
    qualify row_number() over (
        partition by tenant_id, experiment_id, variation_id, metric
        order by snapshot_at desc
    ) = 1

)

select
    tenant_id,
    experiment_id,
    variation_id,
    metric,
    is_control,
    snapshot_at,
    snapshots,
    planned_weight,
    users,
    excluded_users,
    mean,
    variance,
    control_users,
    control_mean,
    absolute_lift,
    absolute_ci_low,
    absolute_ci_high,
    p_value,
    relative_lift,
    relative_ci_low,
    relative_ci_high,
    sequential_p_value,
    sequential_absolute_ci_low,
    sequential_absolute_ci_high,
    sequential_relative_ci_low,
    sequential_relative_ci_high,
    always_valid_p_value,
    always_valid_ci_low,
    always_valid_ci_high,
    always_valid_relative_ci_low,
    always_valid_relative_ci_high,
    srm_p_value,
    srm_p_value < 0.001 as srm_flag,
    cuped_theta,
    cuped_absolute_lift,
    cuped_relative_lift,
    cuped_ci_low,
    cuped_ci_high,
    cuped_p_value,
    cuped_variance_reduction,
    alpha,
    sequential_n_star,
    decision
from latest
