-- One row per assigned user: what they did after their first exposure (orders, revenue,
-- converted, revenue capped at the experiment's cap) and the revenue they brought in the
-- `experiment_pre_period_days` before it, the covariate CUPED uses to remove noise.
--
-- Incremental by user, like int_experiment_assignments: a new order or exposure, or an
-- identify that moves a device's orders to a user, recomputes that user's rows.

{{ config(tombstone_if='experiment_id is null') }}

with

all_assignments as not materialized (

    select * from {{ ref('int_experiment_assignments') }}

),

experiments as not materialized (

    select * from {{ ref('experiments') }}

),

all_orders as not materialized (

    select * from {{ ref('stg_orders') }}

),

identity as not materialized (

    select * from {{ ref('int_identity_map') }}

),

{{ affected_users_cte(ref('int_sessions'), ref('int_identity_map')) }}

orders as (

    {{ possibly_of_affected_users('all_orders', ref('int_identity_map')) }}

),

assignments as (

    {{ of_affected_users('all_assignments') }}

),

all_keyed_orders as (

    select
        orders.tenant_id,
        orders.order_id,
        orders.ordered_at,
        orders.revenue,
        orders.loaded_at,
        {{ stitched_user_key('orders.user_id', 'orders.anonymous_id', 'identity.user_id') }} as user_key
    from orders
    left join identity
        on orders.tenant_id = identity.tenant_id
        and orders.anonymous_id = identity.anonymous_id

),

keyed_orders as (

    {{ of_affected_users('all_keyed_orders') }}

),

per_user as (

    select
        assignments.tenant_id,
        assignments.experiment_id,
        assignments.user_key,
        count(keyed_orders.order_id) filter (
            where keyed_orders.ordered_at >= assignments.first_exposed_at
            and (experiments.end_at is null or keyed_orders.ordered_at < experiments.end_at)
        ) as orders,
        coalesce(sum(keyed_orders.revenue) filter (
            where keyed_orders.ordered_at >= assignments.first_exposed_at
            and (experiments.end_at is null or keyed_orders.ordered_at < experiments.end_at)
        ), 0) as revenue,
        coalesce(sum(keyed_orders.revenue) filter (
            where keyed_orders.ordered_at < assignments.first_exposed_at
            and keyed_orders.ordered_at >= assignments.first_exposed_at
                - to_days({{ var('experiment_pre_period_days') }})
        ), 0) as pre_exposure_revenue,
        max(keyed_orders.loaded_at) as last_order_loaded_at
    from assignments
    -- left: an experiment not in the seeds has no end and no revenue cap
    left join experiments
        on assignments.experiment_id = experiments.experiment_id
    left join keyed_orders
        on assignments.tenant_id = keyed_orders.tenant_id
        and assignments.user_key = keyed_orders.user_key
    group by assignments.tenant_id, assignments.experiment_id, assignments.user_key

)

select
    assignments.tenant_id,
    assignments.experiment_id,
    assignments.user_key,
    assignments.variation_id,
    assignments.first_exposed_at,
    assignments.is_multi_variation,
    per_user.orders,
    per_user.orders > 0 as converted,
    cast(per_user.revenue as double) as revenue,
    cast(
        case
            when experiments.revenue_cap is null then per_user.revenue
            else least(per_user.revenue, experiments.revenue_cap)
        end as double
    ) as capped_revenue,
    cast(per_user.pre_exposure_revenue as double) as pre_exposure_revenue,
    greatest(assignments.last_loaded_at, per_user.last_order_loaded_at) as last_loaded_at
from assignments
inner join per_user
    on assignments.tenant_id = per_user.tenant_id
    and assignments.experiment_id = per_user.experiment_id
    and assignments.user_key = per_user.user_key
left join experiments
    on assignments.experiment_id = experiments.experiment_id
{{- affected_user_tombstones() }}
