-- The current state of every experiment: per tenant x experiment, the rows (variation x
-- metric) of its latest snapshot in fct_experiment_snapshots. The always-valid columns already fold in every
-- earlier snapshot (running minimum p-value, running intersection of the confidence
-- sequence), so this row may be read, and acted on, at any minute. `registered` says whether the
-- experiment is in the seeds or was discovered from the exposures (analysed with defaults).

with

snapshots as not materialized (

    select * from {{ ref('fct_experiment_snapshots') }}

),

experiments as (

    select experiment_id, registered from {{ ref('int_experiments') }}

),

latest as (

    -- the rows of each experiment's latest snapshot: a metric or arm the experiment no
    -- longer has (its seed row edited) is not reported from an older one
    select *
    from snapshots
    qualify snapshot_at = max(snapshot_at) over (partition by tenant_id, experiment_id)

)

select
    latest.tenant_id,
    latest.experiment_id,
    latest.variation_id,
    latest.metric,
    coalesce(experiments.registered, false) as registered,
    latest.is_control,
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
left join experiments
    on latest.experiment_id = experiments.experiment_id
