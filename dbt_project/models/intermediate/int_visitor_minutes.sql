-- One row per tenant, minute and visitor with a visit event (page, screen or track) in that
-- minute: whether the visitor completed an order that counts then (`counted_completion`: an
-- order's first completion, so a re-sent order counts once), the orders and revenue counted,
-- and the load time of the latest event. mart_conversion_windows reads its windows from these
-- rows instead of from the events: an hour of traffic is ~2.3 events a visitor-minute, and
-- the completions need no join to the orders again.
--
-- Incremental per tenant: the rows from the first minute newly loaded visit events touch are
-- recomputed from the events of those minutes (late events included). A late copy of an order
-- that takes the order from its kept completion is itself a newly loaded completion, at or
-- before the minute of the one it displaces, so both minutes are recomputed.

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id'], 'since': 'minute_at'}],
    )
}}

{%- if is_incremental() %}
{%- set touched %}
    select tenant_id, min({{ utc_minute('event_at') }}) as recompute_from
    from {{ ref('stg_events') }}
    where loaded_at > {{ incremental_watermark('loaded_at') }}
        and event_type in ('page', 'screen', 'track') and event_name is distinct from 'Trigger Fired'
    group by tenant_id
{%- endset %}
{%- set scan_from = query_literal(
    "select cast(min(recompute_from) as varchar) from (" ~ touched ~ ")", "timestamptz"
) %}
{%- endif %}

with

visit_events as (

    select * from {{ ref('stg_events') }}
    where event_type in ('page', 'screen', 'track') and event_name is distinct from 'Trigger Fired'
    {%- if is_incremental() %}
        and event_at >= {{ scan_from }}
    {%- endif %}

),

{%- if is_incremental() %}

touched_minutes as (

    {{ touched }}

),

{%- endif %}

recomputed as (

    select visit_events.*
    from visit_events
    {%- if is_incremental() %}
    inner join touched_minutes
        on visit_events.tenant_id = touched_minutes.tenant_id
        and visit_events.event_at >= touched_minutes.recompute_from
    {%- endif %}

),

events as (

    select
        recomputed.*,
        {{ counted_completion('recomputed', 'first_completions') }} as completes_order
    from recomputed
    {{ join_first_completions('recomputed', ref('stg_orders'), 'first_completions', scan_from if is_incremental() else none) }}

),

final as (

    select
        tenant_id,
        {{ utc_minute('event_at') }} as minute_at,
        visitor_id,
        coalesce(bool_or(completes_order), false) as converted,
        count(distinct order_id) filter (where completes_order) as orders,
        coalesce(sum(revenue) filter (where completes_order), 0) as revenue,
        max(loaded_at) as loaded_at
    from events
    group by tenant_id, {{ utc_minute('event_at') }}, visitor_id

)

select * from final
