-- One row per session: where it came from (channel, campaign, landing page), on what device,
-- what it did (events, page views, orders, revenue) and for whom (stitched user).
--
-- Incremental by device, like int_sessionized_events: the sessions of a device from the first
-- one that changed are rebuilt; every session of a device whose user changed (it identified)
-- is rebuilt, so its user_key follows.

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_scope',
        replace_scope=[{'keys': ['tenant_id', 'device_id'], 'since': 'session_start_at'}],
        on_schema_change='fail',
    )
}}

with

all_events as (

    select * from {{ ref('int_sessionized_events') }}

),

identity as (

    select * from {{ ref('int_identity_map') }}

),

{% if is_incremental() -%}
changed as (

    select tenant_id, device_id, min(session_start_at) as changed_from
    from all_events
    where loaded_at > {{ incremental_watermark() }}
    group by tenant_id, device_id

    union all

    select tenant_id, anonymous_id as device_id, '-infinity'::timestamptz as changed_from
    from identity
    where last_loaded_at > {{ incremental_watermark() }}

),

events as (

    select all_events.*
    from all_events
    inner join (
        select tenant_id, device_id, min(changed_from) as changed_from
        from changed
        group by tenant_id, device_id
    ) as changed_devices
        on all_events.tenant_id = changed_devices.tenant_id
        and all_events.device_id = changed_devices.device_id
        and all_events.session_start_at >= changed_devices.changed_from

),
{%- else -%}
events as (

    select * from all_events

),
{%- endif %}

utm_channels as (

    select lower(utm_medium) as utm_medium, channel from {{ ref('channel_utm_mediums') }}

),

referrer_channels as (

    select domain, channel from {{ ref('channel_referrer_domains') }}

),

sessions as (

    select
        tenant_id,
        session_id,
        device_id,
        min(session_start_at) as session_start_at,
        max(event_at) as session_end_at,
        count(*) as events,
        count(*) filter (where event_type in ('page', 'screen')) as page_views,
        max(user_id) as user_id_seen,
        arg_min(page_path, event_at) as landing_page,
        arg_min(page_url, event_at) as landing_url,
        arg_min(page_referrer, event_at) as referrer,
        arg_min(utm_source, event_at) as utm_source,
        arg_min(utm_medium, event_at) as utm_medium,
        arg_min(utm_campaign, event_at) as utm_campaign,
        arg_min(device_class, event_at) as device_class,
        count(distinct order_id) filter (where event_name = 'Order Completed') as orders,
        coalesce(sum(revenue) filter (where event_name = 'Order Completed'), 0) as revenue,
        max(loaded_at) as events_loaded_at
    from events
    group by tenant_id, session_id, device_id

),

attributed as (

    select
        sessions.*,
        {{ url_domain('sessions.referrer') }} as referrer_domain,
        case
            when utm_channels.channel is not null then utm_channels.channel
            when sessions.utm_source is not null then 'referral'
            when {{ url_domain('sessions.referrer') }} is null
                or {{ url_domain('sessions.referrer') }} = {{ url_domain('sessions.landing_url') }}
                then 'direct'
            when referrer_channels.channel is not null then referrer_channels.channel
            else 'referral'
        end as channel
    from sessions
    left join utm_channels
        on lower(sessions.utm_medium) = utm_channels.utm_medium
    left join referrer_channels
        on {{ url_domain('sessions.referrer') }} = referrer_channels.domain

),

final as (

    select
        attributed.tenant_id,
        attributed.session_id,
        attributed.device_id,
        coalesce(attributed.user_id_seen, identity.user_id) as user_id,
        {{ stitched_user_key('attributed.user_id_seen', 'attributed.device_id') }} as user_key,
        attributed.session_start_at,
        attributed.session_end_at,
        cast(attributed.session_start_at as date) as session_date,
        date_diff('second', attributed.session_start_at, attributed.session_end_at) as duration_s,
        attributed.events,
        attributed.page_views,
        attributed.landing_page,
        attributed.referrer_domain,
        attributed.channel,
        attributed.utm_source,
        attributed.utm_medium,
        attributed.utm_campaign,
        attributed.device_class,
        attributed.orders,
        attributed.revenue,
        attributed.orders > 0 as converted,
        greatest(attributed.events_loaded_at, identity.last_loaded_at) as last_loaded_at
    from attributed
    left join identity
        on attributed.tenant_id = identity.tenant_id
        and attributed.device_id = identity.anonymous_id

)

select * from final
