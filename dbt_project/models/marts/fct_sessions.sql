-- One row per session: where it came from (channel, campaign, landing page), on what device,
-- what it did (events, page views, orders, revenue) and for whom (stitched user).

with

events as (

    select * from {{ ref('int_sessionized_events') }}

),

identity as (

    select * from {{ ref('int_identity_map') }}

),

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
        coalesce(sum(revenue) filter (where event_name = 'Order Completed'), 0) as revenue
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
        attributed.orders > 0 as converted
    from attributed
    left join identity
        on attributed.tenant_id = identity.tenant_id
        and attributed.device_id = identity.anonymous_id

)

select * from final
