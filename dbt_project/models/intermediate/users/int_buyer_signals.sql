-- One row per user (stitched, as in dim_users): what a merchant wants to see while talking to
-- a buyer and what triggers act on. Their recent sessions, the last products they looked
-- at, the open cart, their orders, where they came from and the partner that sent them last.
-- Clock-relative figures (sessions in the last 7 days, days since the last order) are left
-- to mart_buyer_signals, so a row changes only when the user's events do.
--
-- Incremental by user, like dim_users: the users whose sessions changed are recomputed whole
-- from their sessions and commerce events, and a device that signed in leaves its anonymous
-- row (tombstones).

{{ config(tombstone_if='first_seen_at is null') }}

{%- set cart_events = "('Product Added', 'Cart Viewed', 'Checkout Started')" %}

with

identity as not materialized (

    select * from {{ ref('int_identity_map') }}

),

{{ affected_sessions_ctes(ref('int_sessions'), ref('int_identity_map')) }}

signal_events as (

    -- the events a signal is made of; in a minute's run only from the affected users'
    -- earliest session on, so older row groups are skipped
    select
        tenant_id,
        user_id,
        anonymous_id,
        event_name,
        event_at,
        product_id,
        utm_source,
        properties
    from {{ ref('stg_events') }}
    where (
        event_name in ('Product Viewed', 'Order Completed', {{ cart_events[1:-1] }})
        or utm_source is not null
        or json_exists(properties, '$.partner_id')
    )
    {%- if is_incremental() %}
        and event_at >= (select min(session_start_at) from sessions)
    {%- endif %}

),

possible_events as (

    {{ possibly_of_affected_users('signal_events', ref('int_identity_map')) }}

),

stitched_events as (

    -- the properties' fields read here, of the affected users' events only
    select
        possible_events.* exclude (properties),
        json_extract_string(possible_events.properties, '$.partner_id') as partner_id,
        coalesce(try_cast(json_extract(possible_events.properties, '$.price') as decimal(18, 2)), 0)
            * coalesce(try_cast(json_extract(possible_events.properties, '$.quantity') as integer), 1)
            as line_value,
        {{ stitched_user_key('possible_events.user_id', 'possible_events.anonymous_id', 'identity.user_id') }}
            as user_key
    from possible_events
    left join identity
        on possible_events.tenant_id = identity.tenant_id
        and possible_events.anonymous_id = identity.anonymous_id

),

user_events as (

    {{ of_affected_users('stitched_events') }}

),

last_orders as (

    select tenant_id, user_key, max(event_at) as last_order_at
    from user_events
    where event_name = 'Order Completed'
    group by tenant_id, user_key

),

carts as (

    -- the open cart: from the first Product Added after the last order
    select
        user_events.tenant_id,
        user_events.user_key,
        min(user_events.event_at) filter (
            where user_events.event_name = 'Product Added'
        ) as cart_opened_at,
        list(distinct user_events.product_id order by user_events.product_id) filter (
            where user_events.event_name = 'Product Added' and user_events.product_id is not null
        ) as cart_products,
        sum(user_events.line_value) filter (
            where user_events.event_name = 'Product Added'
        ) as cart_value
    from user_events
    left join last_orders
        on user_events.tenant_id = last_orders.tenant_id
        and user_events.user_key = last_orders.user_key
    where user_events.event_name = 'Product Added'
        and (last_orders.last_order_at is null or user_events.event_at > last_orders.last_order_at)
    group by user_events.tenant_id, user_events.user_key

),

cart_touches as (

    select
        carts.tenant_id,
        carts.user_key,
        max(user_events.event_at) as cart_last_touched_at
    from carts
    inner join user_events
        on carts.tenant_id = user_events.tenant_id
        and carts.user_key = user_events.user_key
        and user_events.event_at >= carts.cart_opened_at
    where user_events.event_name in {{ cart_events }}
    group by carts.tenant_id, carts.user_key

),

viewed_products as (

    select tenant_id, user_key, product_id, max(event_at) as last_viewed_at
    from user_events
    where event_name = 'Product Viewed' and product_id is not null
    group by tenant_id, user_key, product_id

),

last_viewed as (

    select
        tenant_id,
        user_key,
        list_slice(list(product_id order by last_viewed_at desc, product_id), 1, 5)
            as last_viewed_products
    from viewed_products
    group by tenant_id, user_key

),

partners as (

    select
        tenant_id,
        user_key,
        arg_max(coalesce(partner_id, utm_source), event_at) as last_partner_id
    from user_events
    where coalesce(partner_id, utm_source) is not null
    group by tenant_id, user_key

),

users as (

    select
        tenant_id,
        user_key,
        max(user_id) as user_id,
        min(session_start_at) as first_seen_at,
        max(session_end_at) as last_seen_at,
        list(session_start_at order by session_start_at desc) as session_starts,
        cast(sum(orders) as bigint) as orders,
        sum(revenue) as lifetime_revenue,
        arg_min(channel, session_start_at) as acquisition_channel,
        arg_min(utm_campaign, session_start_at) as acquisition_campaign,
        max(last_loaded_at) as last_loaded_at
    from sessions
    group by tenant_id, user_key

),

final as (

    select
        users.tenant_id,
        users.user_key,
        users.user_id,
        users.first_seen_at,
        users.last_seen_at,
        list_filter(
            users.session_starts, lambda started: started > users.last_seen_at - interval 30 day
        ) as recent_session_starts,
        coalesce(last_viewed.last_viewed_products, []) as last_viewed_products,
        carts.cart_products,
        cast(carts.cart_value as decimal(18, 2)) as cart_value,
        carts.cart_opened_at,
        cart_touches.cart_last_touched_at,
        users.orders,
        users.lifetime_revenue,
        last_orders.last_order_at,
        users.acquisition_channel,
        users.acquisition_campaign,
        partners.last_partner_id,
        users.last_loaded_at
    from users
    left join last_viewed using (tenant_id, user_key)
    left join carts using (tenant_id, user_key)
    left join cart_touches using (tenant_id, user_key)
    left join last_orders using (tenant_id, user_key)
    left join partners using (tenant_id, user_key)

)

select * from final
{{- affected_user_tombstones() }}
