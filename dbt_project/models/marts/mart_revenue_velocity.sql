-- Revenue per minute since each campaign's launch, and cumulative, from sessions carrying the
-- campaign's utm_campaign (session attribution). Campaign '(all)' is the tenant's whole
-- traffic since its first event.

with

sessions as (

    select * from {{ ref('fct_sessions') }}

),

campaigns as (

    select * from {{ ref('int_campaigns') }}

),

orders as (

    select
        events.tenant_id,
        events.session_id,
        date_trunc('minute', events.event_at) as minute_at,
        count(distinct events.order_id) as orders,
        sum(events.revenue) as revenue
    from {{ ref('int_sessionized_events') }} as events
    where events.event_name = 'Order Completed'
    group by all

),

campaign_orders as (

    select
        sessions.tenant_id,
        sessions.utm_campaign as campaign,
        orders.minute_at,
        orders.orders,
        orders.revenue
    from orders
    inner join sessions
        on orders.tenant_id = sessions.tenant_id
        and orders.session_id = sessions.session_id
    where sessions.utm_campaign is not null

    union all

    select tenant_id, '(all)' as campaign, minute_at, orders, revenue
    from orders

),

all_campaigns as (

    select tenant_id, campaign, launched_at from campaigns

    union all

    select tenant_id, '(all)' as campaign, min(session_start_at) as launched_at
    from sessions
    group by tenant_id

),

spine as (

    select
        tenant_id,
        campaign,
        launched_at,
        unnest(range(
            date_trunc('minute', launched_at),
            date_trunc('minute', (select max(session_end_at) from sessions)) + interval 1 minute,
            interval 1 minute
        )) as minute_at
    from all_campaigns

),

per_minute as (

    select
        spine.tenant_id,
        spine.campaign,
        spine.launched_at,
        spine.minute_at,
        coalesce(sum(campaign_orders.orders), 0) as orders,
        coalesce(sum(campaign_orders.revenue), 0) as revenue
    from spine
    left join campaign_orders
        on spine.tenant_id = campaign_orders.tenant_id
        and spine.campaign = campaign_orders.campaign
        and spine.minute_at = campaign_orders.minute_at
    group by all

)

select
    tenant_id,
    campaign,
    launched_at,
    minute_at,
    cast(date_diff('minute', date_trunc('minute', launched_at), minute_at) as integer)
        as minutes_since_launch,
    cast(orders as bigint) as orders,
    cast(revenue as decimal(38, 2)) as revenue,
    cast(sum(revenue) over (
        partition by tenant_id, campaign order by minute_at
        rows between unbounded preceding and current row
    ) as decimal(38, 2)) as cumulative_revenue
from per_minute
