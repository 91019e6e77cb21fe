-- The sufficient statistics of every arm for every metric of every experiment: users (n), the
-- sum and sum of squares of the metric, and the same for the pre-exposure revenue covariate
-- plus the sum of their products (for CUPED). Every test in mart_experiment_results is
-- computed from these few numbers. Users seen in several variations are left out and counted
-- in `excluded_users`. Planned variations nobody reached yet appear with n = 0, and a
-- variation that is not in the plan appears with planned_weight 0, so the
-- sample-ratio-mismatch test sees both. Experiments and splits come from int_experiments and
-- int_experiment_variations: registered in the seeds, or discovered from the exposures.

with

users as not materialized (

    select * from {{ ref('int_experiment_user_metrics') }}

),

experiments as not materialized (

    select * from {{ ref('int_experiments') }}

),

planned as not materialized (

    select * from {{ ref('int_experiment_variations') }}

),

metric_names as (

    select experiment_id, unnest(string_split(trim(metrics), ' ')) as metric
    from experiments

),

metric_values as (

    select
        users.tenant_id,
        users.experiment_id,
        users.variation_id,
        metric_names.metric,
        users.pre_exposure_revenue as x,
        case metric_names.metric
            when 'conversion' then cast(users.converted as double)
            when 'revenue' then users.revenue
            when 'orders' then cast(users.orders as double)
            when 'capped_revenue' then users.capped_revenue
        end as y
    from users
    inner join metric_names
        on users.experiment_id = metric_names.experiment_id
    where not users.is_multi_variation

),

moments as (

    select
        tenant_id,
        experiment_id,
        variation_id,
        metric,
        count(*) as n,
        sum(y) as sum_y,
        sum(y * y) as sum_y2,
        sum(x) as sum_x,
        sum(x * x) as sum_x2,
        sum(x * y) as sum_xy
    from metric_values
    group by tenant_id, experiment_id, variation_id, metric

),

excluded as (

    select
        tenant_id,
        experiment_id,
        count(*) filter (where is_multi_variation) as excluded_users
    from users
    group by tenant_id, experiment_id

),

arms as (

    select excluded.tenant_id, planned.experiment_id, planned.variation_id
    from excluded
    inner join planned
        on excluded.experiment_id = planned.experiment_id

    union

    select tenant_id, experiment_id, variation_id
    from moments

),

final as (

    select
        arms.tenant_id,
        arms.experiment_id,
        arms.variation_id,
        metric_names.metric,
        arms.variation_id = experiments.control_variation as is_control,
        coalesce(planned.planned_weight, 0) as planned_weight,
        excluded.excluded_users,
        coalesce(moments.n, 0) as n,
        coalesce(moments.sum_y, 0) as sum_y,
        coalesce(moments.sum_y2, 0) as sum_y2,
        coalesce(moments.sum_x, 0) as sum_x,
        coalesce(moments.sum_x2, 0) as sum_x2,
        coalesce(moments.sum_xy, 0) as sum_xy,
        experiments.alpha,
        experiments.sequential_n_star,
        experiments.revenue_cap
    from arms
    inner join experiments
        on arms.experiment_id = experiments.experiment_id
    inner join metric_names
        on arms.experiment_id = metric_names.experiment_id
    inner join excluded
        on arms.tenant_id = excluded.tenant_id
        and arms.experiment_id = excluded.experiment_id
    left join planned
        on arms.experiment_id = planned.experiment_id
        and arms.variation_id = planned.variation_id
    left join moments
        on arms.tenant_id = moments.tenant_id
        and arms.experiment_id = moments.experiment_id
        and arms.variation_id = moments.variation_id
        and metric_names.metric = moments.metric

)

select * from final
