-- Sliding-window conversion per tenant: for every minute, the visitors, converting visitors,
-- orders and revenue of the window ending with that minute, for each size in
-- var('conversion_windows') (1, 5 and 60 minutes). Minutes without traffic are included, so a
-- drop to zero shows.
--
-- Distinct visitors in a sliding window without a distinct count per window: a visitor active
-- at minute a counts in the windows ending at a .. a + size - 1, until their next active
-- minute takes over, so each activity adds +1 at a and -1 at least(a + size, next activity),
-- and a running sum of these steps is the distinct count. The same for converting visitors.
--
-- Incremental per tenant: windows are recomputed from the first minute that newly loaded
-- events touch (or the minute after the last one kept, for new minutes) to the latest minute;
-- activity from one longest window earlier is enough to get them exactly. The activity is read
-- from int_visitor_minutes (one row per visitor and minute, its completions counted), which
-- recomputes only the minutes new events touch: read from the events, each run aggregated the
-- longest window's events again and joined them to the orders, a cost that grew with the
-- traffic of the last hour (0.45 s a cycle after 3 minutes at 1,000 events/s, 1.8 s after 12).

-- depends_on: {{ ref('stg_events') }} (the new events' minutes, read when incremental)

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id'], 'since': 'window_end_at'}],
    )
}}

{%- set sizes = var('conversion_windows') %}
{%- set longest = sizes | max %}

{%- if is_incremental() %}
{%- set bounds %}
    select
        new.tenant_id,
        least(new.first_minute, kept.last_minute + interval 1 minute) as recompute_from,
        least(new.first_minute, kept.first_minute) as first_minute,
        greatest(new.last_minute, kept.last_minute) as last_minute
    from (
        select
            tenant_id,
            min({{ utc_minute('event_at') }}) as first_minute,
            max({{ utc_minute('event_at') }}) as last_minute
        from {{ ref('stg_events') }}
        where loaded_at > {{ incremental_watermark() }}
            and event_type in ('page', 'screen', 'track') and event_name is distinct from 'Trigger Fired'
        group by tenant_id
    ) as new
    left join (
        select tenant_id, min(window_end_at) as first_minute, max(window_end_at) as last_minute
        from {{ this }}
        group by tenant_id
    ) as kept
        on new.tenant_id = kept.tenant_id
{%- endset %}
{%- set scan_from = query_literal(
    "select cast(min(recompute_from) - to_minutes(" ~ (longest - 1) ~ ") as varchar) from ("
    ~ bounds ~ ")",
    "timestamptz"
) %}
{%- endif %}

with

visitor_minutes as (

    select * from {{ ref('int_visitor_minutes') }}
    {%- if is_incremental() %}
    where minute_at >= {{ scan_from }}
    {%- endif %}

),

bounds as (

    {% if is_incremental() -%}
    {{ bounds }}
    {%- else -%}
    select
        tenant_id,
        min(minute_at) as recompute_from,
        min(minute_at) as first_minute,
        max(minute_at) as last_minute
    from visitor_minutes
    group by tenant_id
    {%- endif %}

),

activity as (

    select
        visitor_minutes.tenant_id,
        visitor_minutes.minute_at,
        visitor_minutes.visitor_id,
        visitor_minutes.converted,
        visitor_minutes.orders,
        visitor_minutes.revenue,
        visitor_minutes.loaded_at
    from visitor_minutes
    inner join bounds
        on visitor_minutes.tenant_id = bounds.tenant_id
        and visitor_minutes.minute_at >= bounds.recompute_from - to_minutes({{ longest - 1 }})

),

with_next as (

    select
        *,
        lead(minute_at) over (
            partition by tenant_id, visitor_id order by minute_at
        ) as next_active_at,
        -- the next converting minute, read on a converting one: in the same window as the
        -- line above (one sort, not two)
        lead(case when converted then minute_at end ignore nulls) over (
            partition by tenant_id, visitor_id order by minute_at
        ) as next_converted_at
    from activity

),

steps as (

    {%- for size in sizes %}
    select tenant_id, {{ size }} as window_minutes, minute_at, 1 as visitors, 0 as converting
    from with_next

    union all

    select
        tenant_id,
        {{ size }},
        least(minute_at + to_minutes({{ size }}), coalesce(next_active_at, 'infinity')),
        -1,
        0
    from with_next

    union all

    select tenant_id, {{ size }}, minute_at, 0, 1
    from with_next
    where converted

    union all

    select
        tenant_id,
        {{ size }},
        least(minute_at + to_minutes({{ size }}), coalesce(next_converted_at, 'infinity')),
        0,
        -1
    from with_next
    where converted
    {{ "union all" if not loop.last }}
    {%- endfor %}

),

step_totals as (

    select
        tenant_id,
        window_minutes,
        minute_at,
        sum(visitors) as visitors,
        sum(converting) as converting
    from steps
    group by all

),

minute_totals as (

    select
        tenant_id,
        minute_at,
        sum(orders) as orders,
        sum(revenue) as revenue,
        max(loaded_at) as loaded_at
    from activity
    group by all

),

spine as (

    select
        tenant_id,
        recompute_from,
        first_minute,
        unnest(range(
            recompute_from - to_minutes({{ longest - 1 }}),
            last_minute + interval 1 minute,
            interval 1 minute
        )) as minute_at
    from bounds

),

sizes as (

    select unnest({{ sizes }}) as window_minutes

),

windowed as (

    select
        spine.tenant_id,
        spine.recompute_from,
        spine.first_minute,
        spine.minute_at as window_end_at,
        sizes.window_minutes,
        sum(coalesce(step_totals.visitors, 0)) over running as visitors,
        sum(coalesce(step_totals.converting, 0)) over running as converting_visitors,
        sum(coalesce(minute_totals.orders, 0)) over (
            partition by spine.tenant_id, sizes.window_minutes
            order by spine.minute_at
            range between to_minutes(sizes.window_minutes - 1) preceding and current row
        ) as orders,
        sum(coalesce(minute_totals.revenue, 0)) over (
            partition by spine.tenant_id, sizes.window_minutes
            order by spine.minute_at
            range between to_minutes(sizes.window_minutes - 1) preceding and current row
        ) as revenue,
        max(minute_totals.loaded_at) over (
            partition by spine.tenant_id, sizes.window_minutes
            order by spine.minute_at
            range between to_minutes(sizes.window_minutes - 1) preceding and current row
        ) as last_loaded_at
    from spine
    cross join sizes
    left join step_totals
        on spine.tenant_id = step_totals.tenant_id
        and sizes.window_minutes = step_totals.window_minutes
        and spine.minute_at = step_totals.minute_at
    left join minute_totals
        on spine.tenant_id = minute_totals.tenant_id
        and spine.minute_at = minute_totals.minute_at
    window running as (
        partition by spine.tenant_id, sizes.window_minutes
        order by spine.minute_at
        rows between unbounded preceding and current row
    )

)

select
    tenant_id,
    window_end_at,
    cast(window_minutes as integer) as window_minutes,
    cast(visitors as bigint) as visitors,
    cast(converting_visitors as bigint) as converting_visitors,
    cast(orders as bigint) as orders,
    cast(revenue as decimal(38, 2)) as revenue,
    case when visitors > 0 then converting_visitors / visitors end as conversion_rate,
    last_loaded_at
from windowed
where window_end_at >= recompute_from and window_end_at >= first_minute
