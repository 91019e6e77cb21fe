-- One row per session with what the purchase-propensity model sees (lakepulse/analytics/
-- propensity.py), counted from the session's events *before its first order*: its page and
-- product views, products added and the cart's value, its length so far, channel and device,
-- whether the visitor had a session before, and her orders before it. A live session is scored
-- on the same features, so nothing the order itself causes (a confirmation page, a longer
-- visit) can leak into training. The label (an order within 24 h of the start) is computed by
-- the model's code.
--
-- Incremental by user, like dim_users: the users whose sessions changed have all their
-- sessions recomputed (a new session or order moves their later sessions' `returning_visitor`
-- and `past_orders`), and a device that signed in leaves its anonymous rows (tombstones).

{{ config(tombstone_if='session_id is null') }}

with

{{ affected_users_cte(ref('int_sessions'), ref('int_identity_map')) }}

sessions as (

    select
        tenant_id, session_id, user_key, session_start_at, session_end_at, channel, device_class,
        last_loaded_at
    from ({{ of_affected_users(ref('int_sessions')) }})

),

all_session_events as not materialized (

    select * from {{ ref('int_sessionized_events') }}

),

session_events as (

    -- the affected users' sessions' events; in a minute's run only from their earliest
    -- session on, so older row groups are skipped
    select events.tenant_id, events.session_id, events.message_id, events.event_type,
        events.event_name, events.event_at
    from all_session_events as events
    semi join sessions
        on events.tenant_id = sessions.tenant_id and events.session_id = sessions.session_id
    {%- if is_incremental() %}
    where events.event_at >= (select min(session_start_at) from sessions)
    {%- endif %}

),

first_orders as (

    select tenant_id, session_id, min(event_at) as first_order_at
    from session_events
    where event_name = 'Order Completed'
    group by tenant_id, session_id

),

before_order as (

    select session_events.*
    from session_events
    left join first_orders using (tenant_id, session_id)
    where first_orders.first_order_at is null or session_events.event_at < first_orders.first_order_at

),

activity as (

    select
        tenant_id,
        session_id,
        count(*) filter (where event_type in ('page', 'screen')) as page_views,
        count(*) filter (where event_name = 'Product Viewed') as product_views,
        count(*) filter (where event_name = 'Product Added') as cart_adds,
        date_diff('second', min(event_at), max(event_at)) as duration_s
    from before_order
    group by tenant_id, session_id

),

added as (

    -- price and quantity are in stg_events' payload
    select tenant_id, message_id, properties
    from {{ ref('stg_events') }}
    where event_name = 'Product Added'
    {%- if is_incremental() %}
        and event_at >= (select min(session_start_at) from sessions)
    {%- endif %}

),

carts as (

    select
        before_order.tenant_id,
        before_order.session_id,
        sum(
            coalesce(try_cast(json_extract(added.properties, '$.price') as double), 0)
            * coalesce(try_cast(json_extract(added.properties, '$.quantity') as integer), 1)
        ) as cart_value
    from before_order
    inner join added
        on added.tenant_id = before_order.tenant_id
        and added.message_id = before_order.message_id
    where before_order.event_name = 'Product Added'
    group by before_order.tenant_id, before_order.session_id

),

past_orders as (

    select
        sessions.tenant_id,
        sessions.session_id,
        count(orders.order_id) as past_orders
    from sessions
    inner join {{ ref('int_customer_orders') }} as orders
        on orders.tenant_id = sessions.tenant_id
        and orders.user_key = sessions.user_key
        and orders.ordered_at < sessions.session_start_at
    group by sessions.tenant_id, sessions.session_id

)

select
    sessions.tenant_id,
    sessions.session_id,
    sessions.user_key,
    sessions.session_start_at,
    sessions.session_end_at,
    first_orders.first_order_at,
    coalesce(activity.page_views, 0) as page_views,
    coalesce(activity.product_views, 0) as product_views,
    coalesce(activity.cart_adds, 0) as cart_adds,
    coalesce(carts.cart_value, 0)::double as cart_value,
    coalesce(activity.duration_s, 0) as duration_s,
    -- session_id breaks ties: two devices of one user can start sessions at the same instant
    (row_number() over (
        partition by sessions.tenant_id, sessions.user_key
        order by sessions.session_start_at, sessions.session_id
    ) > 1)::integer as returning_visitor,
    coalesce(past_orders.past_orders, 0) as past_orders,
    sessions.channel,
    sessions.device_class,
    sessions.last_loaded_at
from sessions
left join first_orders using (tenant_id, session_id)
left join activity using (tenant_id, session_id)
left join carts using (tenant_id, session_id)
left join past_orders using (tenant_id, session_id)
{{- affected_user_tombstones() }}
