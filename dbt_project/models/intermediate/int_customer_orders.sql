-- One row per order for the customer-lifetime models: the stitched customer (`user_key`, as in
-- dim_users and mart_buyer_signals), the order's UTC day and its revenue. The daily purchase
-- occasions and the RFM summary are made from these rows in Python
-- (`lakepulse/analytics/clv.py`), by the fit (`lakepulse predict`) and by
-- mart_customer_predictions alike.

with

orders as not materialized (

    select * from {{ ref('stg_orders') }}

),

identity as (

    select tenant_id, anonymous_id, user_id from {{ ref('int_identity_map') }}

)

select
    orders.tenant_id,
    {{ stitched_user_key('orders.user_id', 'orders.anonymous_id', 'identity.user_id') }} as user_key,
    orders.order_id,
    orders.ordered_at,
    cast(timezone('UTC', orders.ordered_at) as date) as order_date,
    coalesce(orders.revenue, 0)::double as revenue
from orders
left join identity
    on orders.tenant_id = identity.tenant_id
    and orders.anonymous_id = identity.anonymous_id
