-- One row per order for the customer-lifetime models: the stitched customer (`user_key`, as in
-- dim_users and mart_buyer_signals), the order's UTC day and its revenue. The daily purchase
-- occasions and the RFM summary are made from these rows in Python
-- (`lakepulse/analytics/clv.py`), by the fit (`lakepulse predict`) and by
-- mart_customer_predictions alike.
--
-- Incremental by order: an order changes when stg_orders decides it again (a new order, or a
-- late copy that takes the first completion) or when its device's identity changes (the device
-- signed in, so its anonymous orders become the user's). Those orders are stitched again; the
-- rest are kept, so a session turn costs what changed, not every order of the history.

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id', 'order_id']}],
        on_schema_change='fail',
    )
}}

with

orders as not materialized (

    select * from {{ ref('stg_orders') }}

),

identity as not materialized (

    select tenant_id, anonymous_id, user_id, last_loaded_at from {{ ref('int_identity_map') }}

),

{% if is_incremental() -%}
{%- set watermark = incremental_watermark() %}
restitched_devices as (

    select tenant_id, anonymous_id
    from identity
    where last_loaded_at > {{ watermark }}

),

recomputed_orders as (

    select * from orders
    where loaded_at > {{ watermark }}

    union all

    -- orders already kept whose device's identity changed
    select orders.*
    from orders
    semi join restitched_devices
        on orders.tenant_id = restitched_devices.tenant_id
        and orders.anonymous_id = restitched_devices.anonymous_id
    where orders.loaded_at <= {{ watermark }}

),
{%- else -%}
recomputed_orders as (

    select * from orders

),
{%- endif %}

stitched as (

    select
        orders.tenant_id,
        {{ stitched_user_key('orders.user_id', 'orders.anonymous_id', 'identity.user_id') }}
            as user_key,
        orders.order_id,
        orders.ordered_at,
        cast(timezone('UTC', orders.ordered_at) as date) as order_date,
        coalesce(orders.revenue, 0)::double as revenue,
        greatest(orders.loaded_at, identity.last_loaded_at) as last_loaded_at
    from recomputed_orders as orders
    left join identity
        on orders.tenant_id = identity.tenant_id
        and orders.anonymous_id = identity.anonymous_id

)

select * from stitched
