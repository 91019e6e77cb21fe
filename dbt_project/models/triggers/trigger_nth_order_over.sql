-- Kind `nth_order_over`: the `n`th order of the tenant in the calendar `period` (month or
-- quarter, UTC) with revenue of at least `revenue` ("a letter of happiness for the 99th
-- order over 1,000 this quarter"). Orders count once (stg_orders: an order's first
-- completion); the current and the previous period are looked at.

with

definitions as (

    {{ trigger_definitions('nth_order_over', {'n': 'bigint', 'revenue': 'double', 'period': 'varchar'}) }}

),

clocks as not materialized (

    select * from {{ ref('int_session_clocks') }}

),

identity as not materialized (

    select * from {{ ref('int_identity_map') }}

),

recent_orders as (

    select * from {{ ref('stg_orders') }}
    where ordered_at >= date_trunc('quarter', (select min(judged_at) from clocks)) - interval 3 month

),

qualifying as (

    select
        definitions.trigger,
        definitions.n,
        definitions.period,
        recent_orders.tenant_id,
        {{ stitched_user_key('recent_orders.user_id', 'recent_orders.anonymous_id', 'identity.user_id') }} as user_key,
        recent_orders.order_id,
        recent_orders.ordered_at,
        recent_orders.revenue,
        date_trunc(definitions.period, recent_orders.ordered_at) as period_start
    from recent_orders
    inner join definitions
        on {{ trigger_applies('definitions', 'recent_orders.tenant_id') }}
        and recent_orders.revenue >= definitions.revenue
    left join identity
        on recent_orders.tenant_id = identity.tenant_id
        and recent_orders.anonymous_id = identity.anonymous_id

),

numbered as (

    select
        *,
        row_number() over (
            partition by trigger, tenant_id, period_start order by ordered_at, order_id
        ) as order_number
    from qualifying

),

final as (

    select
        trigger,
        tenant_id,
        user_key as user_id,
        strftime(period_start, '%Y-%m-%d') || '|' || order_id as occurrence_key,
        ordered_at as occurred_at,
        cast(json_object(
            'order_id', order_id,
            'revenue', revenue,
            'order_number', order_number,
            'period', period,
            'period_start', period_start
        ) as varchar) as payload
    from numbered
    where order_number = n

)

select * from final
