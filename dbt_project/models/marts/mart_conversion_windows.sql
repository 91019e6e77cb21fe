-- Sliding-window conversion per tenant: for every minute, the visitors, converting visitors,
-- orders and revenue of the window ending with that minute, for each size in
-- var('conversion_windows') (1, 5 and 60 minutes). Minutes without traffic are included, so a
-- drop to zero shows.

with

events as (

    select * from {{ ref('stg_events') }}
    where event_type in ('page', 'screen', 'track')

),

activity as (

    select
        tenant_id,
        date_trunc('minute', event_at) as minute_at,
        visitor_id,
        bool_or(event_name = 'Order Completed') as converted,
        count(distinct order_id) filter (where event_name = 'Order Completed') as orders,
        coalesce(sum(revenue) filter (where event_name = 'Order Completed'), 0) as revenue
    from events
    group by tenant_id, date_trunc('minute', event_at), visitor_id

),

spine as (

    select
        tenant_id,
        unnest(range(min(minute_at), max(minute_at) + interval 1 minute, interval 1 minute))
            as minute_at
    from activity
    group by tenant_id

),

filled as (

    select
        spine.tenant_id,
        spine.minute_at,
        activity.visitor_id,
        activity.converted,
        coalesce(activity.orders, 0) as orders,
        coalesce(activity.revenue, 0) as revenue
    from spine
    left join activity
        on spine.tenant_id = activity.tenant_id
        and spine.minute_at = activity.minute_at

),

windowed as (

    select
        tenant_id,
        minute_at
        {%- for size in var('conversion_windows') %},
        count(distinct visitor_id) over w{{ size }} as visitors_{{ size }},
        count(distinct case when converted then visitor_id end) over w{{ size }} as converting_{{ size }},
        sum(orders) over w{{ size }} as orders_{{ size }},
        sum(revenue) over w{{ size }} as revenue_{{ size }}
        {%- endfor %}
    from filled
    window
        {%- for size in var('conversion_windows') %}
        w{{ size }} as (
            partition by tenant_id order by minute_at
            range between interval {{ size - 1 }} minute preceding and current row
        ){{ "," if not loop.last }}
        {%- endfor %}

),

per_minute as (

    select * from windowed
    qualify row_number() over (partition by tenant_id, minute_at) = 1

),

unpivoted as (

    {%- for size in var('conversion_windows') %}
    select
        tenant_id,
        minute_at as window_end_at,
        {{ size }} as window_minutes,
        visitors_{{ size }} as visitors,
        converting_{{ size }} as converting_visitors,
        orders_{{ size }} as orders,
        revenue_{{ size }} as revenue
    from per_minute
    {{ "union all" if not loop.last }}
    {%- endfor %}

)

select
    tenant_id,
    window_end_at,
    cast(window_minutes as integer) as window_minutes,
    visitors,
    converting_visitors,
    cast(orders as bigint) as orders,
    cast(revenue as decimal(38, 2)) as revenue,
    case when visitors > 0 then converting_visitors / visitors end as conversion_rate
from unpivoted
