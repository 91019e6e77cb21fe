-- One row per order: the first `Order Completed` event of each (tenant, order_id). SDK retries
-- and repeated confirmation pages can send an order twice; it counts once.

with

events as (

    select * from {{ ref('stg_events') }}
    where event_name = 'Order Completed' and order_id is not null

),

first_completion as (

    select *
    from events
    qualify row_number() over (
        partition by tenant_id, order_id order by event_at, message_id
    ) = 1

)

select
    tenant_id,
    order_id,
    message_id,
    visitor_id,
    user_id,
    anonymous_id,
    event_at as ordered_at,
    cast(event_at as date) as order_date,
    revenue,
    currency,
    product_id,
    utm_source,
    utm_medium,
    utm_campaign,
    device_class
from first_completion
