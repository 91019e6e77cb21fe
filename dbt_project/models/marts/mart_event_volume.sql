-- Events, visitors and revenue per tenant, minute and event name: the first mart to look at
-- when asking "is traffic arriving?", and the basis of the pipeline's reconciliation checks.

with

events as (

    select * from {{ ref('stg_events') }}

),

per_minute as (

    select
        tenant_id,
        date_trunc('minute', event_at) as event_minute,
        event_type,
        event_name,
        count(*) as events,
        count(distinct visitor_id) as visitors,
        count(distinct order_id) filter (where event_name = 'Order Completed') as orders,
        coalesce(sum(revenue) filter (where event_name = 'Order Completed'), 0) as revenue
    from events
    group by all

)

select * from per_minute
