-- Visits (page, screen, track calls) cut into sessions per device: a new session starts with a
-- device's first event or after `session_timeout_minutes` without one. A session can run
-- across midnight; it belongs to the day it started.
--
-- Incremental by device: for each device with newly loaded events, the sessions from the first
-- one those events can touch are recomputed (the session holding the device's events within
-- the timeout before its earliest new event, or that event itself). Earlier sessions cannot
-- change: more than a timeout separates them from anything new. A late event that bridges two
-- sessions merges them; the scope `since session_start_at` removes the old pieces.

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id', 'device_id'], 'since': 'session_start_at'}],
    )
}}

{%- set timeout = "to_minutes(" ~ var('session_timeout_minutes') ~ "::bigint)" %}
{#- `Trigger Fired` events are lakepulse's own reactions, not the visitor's activity -#}
{%- set visits = "event_type in ('page', 'screen', 'track') and event_name is distinct from 'Trigger Fired'" %}

{%- if is_incremental() %}
{%- set watermark = incremental_watermark('loaded_at') %}
{#- a literal lower bound on the kept events to look at, so old row groups are skipped -#}
{%- set kept_from = query_literal(
    "select cast(min(event_at) - " ~ timeout ~ " as varchar) from " ~ ref('stg_events')
    ~ " where loaded_at > " ~ watermark ~ " and " ~ visits,
    "timestamptz"
) %}
{%- set recompute_from %}
    -- per device with new events: the first session they can touch
    select
        new_events.tenant_id,
        new_events.device_id,
        least(new_events.first_new_at, min(kept.session_start_at)) as cut_at
    from (
        select tenant_id, device_id, min(event_at) as first_new_at
        from {{ ref('stg_events') }}
        where loaded_at > {{ watermark }} and {{ visits }}
        group by tenant_id, device_id
    ) as new_events
    left join {{ this }} as kept
        on new_events.tenant_id = kept.tenant_id
        and new_events.device_id = kept.device_id
        and kept.event_at >= new_events.first_new_at - {{ timeout }}
        and kept.event_at >= {{ kept_from }}
    group by new_events.tenant_id, new_events.device_id, new_events.first_new_at
{%- endset %}
{%- set scan_from = query_literal(
    "select cast(min(cut_at) as varchar) from (" ~ recompute_from ~ ")", "timestamptz"
) %}
{%- endif %}

with

events as (

    select
        tenant_id,
        message_id,
        device_id,
        visitor_id,
        user_id,
        anonymous_id,
        event_type,
        event_name,
        event_at,
        loaded_at,
        page_path,
        page_url,
        page_referrer,
        utm_source,
        utm_medium,
        utm_campaign,
        device_class,
        order_id,
        revenue,
        product_id
    from {{ ref('stg_events') }}
    where {{ visits }}
    {%- if is_incremental() %}
        and event_at >= {{ scan_from }}
    {%- endif %}

),

{% if is_incremental() -%}
recompute_from as (

    {{ recompute_from }}

),

scoped as (

    select events.*
    from events
    inner join recompute_from
        on events.tenant_id = recompute_from.tenant_id
        and events.device_id = recompute_from.device_id
        and events.event_at >= recompute_from.cut_at

),
{%- else -%}
scoped as (

    select * from events

),
{%- endif %}

event_keys as (

    -- the windows below sort all they carry: the keys alone, not the events' other columns
    -- (URLs, campaign fields), which made them three times as slow
    select tenant_id, device_id, message_id, event_at from scoped

),

gaps as (

    select
        *,
        lag(event_at) over (
            partition by tenant_id, device_id order by event_at, message_id
        ) as previous_event_at
    from event_keys

),

numbered as (

    select
        *,
        sum(
            case
                when previous_event_at is null then 1
                when event_at - previous_event_at > {{ timeout }} then 1
                else 0
            end
        ) over (
            partition by tenant_id, device_id
            order by event_at, message_id
            rows between unbounded preceding and current row
        ) as session_number
    from gaps

),

session_starts as (

    select
        tenant_id,
        message_id,
        min(event_at) over (
            partition by tenant_id, device_id, session_number
        ) as session_start_at
    from numbered

),

sessionized as (

    -- a message is one event of its tenant (stg_events keeps its first copy)
    select scoped.*, session_starts.session_start_at
    from scoped
    inner join session_starts
        on scoped.tenant_id = session_starts.tenant_id
        and scoped.message_id = session_starts.message_id

)

select
    *,
    md5(tenant_id || '|' || device_id || '|' || strftime(session_start_at, '%Y-%m-%dT%H:%M:%S.%f'))
        as session_id
from sessionized
{%- if not is_incremental() %}
-- in time order, so the small time ranges later runs read skip most row groups
order by event_at
{%- endif %}
