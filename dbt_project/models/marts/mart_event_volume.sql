-- Events, visitors and revenue per tenant, minute and event name: the first mart to look at
-- when asking "is traffic arriving?", and the basis of the pipeline's reconciliation checks.
-- Incremental by minute: the minutes newly loaded events fall in are recounted.

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id', 'event_minute']}],
    )
}}

{%- if is_incremental() %}
{%- set changed_minutes %}
    select distinct tenant_id, {{ utc_minute('event_at') }} as event_minute
    from {{ ref('stg_events') }}
    where loaded_at > {{ incremental_watermark() }}
{%- endset %}
{%- set scan_from = query_literal(
    "select cast(min(event_minute) as varchar) from (" ~ changed_minutes ~ ")", "timestamptz"
) %}
{%- endif %}

with

all_events as not materialized (

    select * from {{ ref('stg_events') }}

),

{% if is_incremental() -%}
changed_minutes as (

    {{ changed_minutes }}

),
{%- endif %}

events as (

    select * from all_events
    {%- if is_incremental() %}
    where event_at >= {{ scan_from }}
    {%- endif %}

),

per_minute as (

    select
        tenant_id,
        {{ utc_minute('event_at') }} as event_minute,
        event_type,
        event_name,
        count(*) as events,
        count(distinct visitor_id) as visitors,
        count(distinct order_id) filter (where event_name = 'Order Completed') as orders,
        coalesce(sum(revenue) filter (where event_name = 'Order Completed'), 0) as revenue,
        max(loaded_at) as last_loaded_at
    from events
    group by all

),

final as (

    select per_minute.*
    from per_minute
    {%- if is_incremental() %}
    -- every minute from the earliest changed one is counted (a filter of the scan), then only
    -- the changed ones kept: the join runs on the counts, not on every event read
    semi join changed_minutes
        on per_minute.tenant_id = changed_minutes.tenant_id
        and per_minute.event_minute = changed_minutes.event_minute
    {%- endif %}

)

select * from final
