-- One row per session: where it came from (channel, campaign, landing page), on what device,
-- what it did (events, page views, orders, revenue) and for whom (stitched user). Every model
-- downstream reads sessions here; `fct_sessions` is the published copy BI reads.
--
-- Incremental by device, like int_sessionized_events: the sessions of a device from the first
-- one that changed are rebuilt from its events. A session also changes without an event of its
-- own when a later-loaded, earlier copy of one of its orders takes the order away (the first
-- completion wins, stg_orders): the sessions holding any completion of an order decided since
-- the last run are rebuilt too, and a session's last_loaded_at counts its orders' decisions, so
-- the user-level models downstream recompute the user who lost the order as well. A device
-- whose user changed (it identified) has its other sessions restamped with the user from the
-- row already kept, without reading their events again. Every row this replaces or removes is
-- in a device's scope that starts at a row whose last_loaded_at is past the watermark, which
-- is how fct_sessions finds what to copy.

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id', 'device_id'], 'since': 'session_start_at'}],
    )
}}

with

{%- if is_incremental() %}
{%- set watermark = incremental_watermark() %}
{%- set decided_orders %}
    select tenant_id, order_id, ordered_at
    from {{ ref('stg_orders') }}
    where loaded_at > {{ watermark }}
{%- endset %}
{#- the earliest completion an order decided since the watermark can have: its first one -#}
{%- set completions_from = query_literal(
    "select cast(min(ordered_at) as varchar) from (" ~ decided_orders ~ ")", "timestamptz"
) %}
{%- set changed %}
    select tenant_id, device_id, min(changed_from) as changed_from
    from (
        -- devices with new events, from their first session those events touched
        select tenant_id, device_id, min(session_start_at) as changed_from
        from {{ ref('int_sessionized_events') }}
        where loaded_at > {{ watermark }}
        group by tenant_id, device_id

        union all

        -- devices holding a completion of an order whose first completion changed
        select completions.tenant_id, completions.device_id, min(completions.session_start_at)
        from {{ ref('int_sessionized_events') }} as completions
        semi join ({{ decided_orders }}) as decided
            on completions.tenant_id = decided.tenant_id
            and completions.order_id = decided.order_id
        where completions.event_name = 'Order Completed'
            and completions.event_at >= {{ completions_from }}
        group by completions.tenant_id, completions.device_id
    )
    group by tenant_id, device_id
{%- endset %}
{%- set scan_from = query_literal(
    "select cast(min(changed_from) as varchar) from (" ~ changed ~ ")", "timestamptz"
) %}
{%- endif %}

identity as not materialized (

    select * from {{ ref('int_identity_map') }}

),

{% if is_incremental() -%}
changed as (

    {{ changed }}

),

changed_by_identity as (

    select tenant_id, anonymous_id as device_id
    from identity
    where last_loaded_at > {{ watermark }}

),

events as (

    select all_events.*
    from {{ ref('int_sessionized_events') }} as all_events
    inner join changed
        on all_events.tenant_id = changed.tenant_id
        and all_events.device_id = changed.device_id
        and all_events.session_start_at >= changed.changed_from
    where all_events.session_start_at >= {{ scan_from }}

),

restamped as (

    -- sessions of a device whose user changed, not rebuilt from events above
    select
        kept.* replace (
            coalesce(kept.session_user_id, identity.user_id) as user_id,
            {{ stitched_user_key('kept.session_user_id', 'kept.device_id', 'identity.user_id') }} as user_key,
            greatest(kept.last_loaded_at, identity.last_loaded_at) as last_loaded_at
        )
    from (
        {{ rows_by_row_id(this, 'changed_by_identity', {
            'tenant_id': 'changed_by_identity.tenant_id',
            'device_id': 'changed_by_identity.device_id'
        }) }}
    ) as kept
    left join changed
        on kept.tenant_id = changed.tenant_id
        and kept.device_id = changed.device_id
    left join identity
        on kept.tenant_id = identity.tenant_id
        and kept.device_id = identity.anonymous_id
    where changed.changed_from is null
        or kept.session_start_at < changed.changed_from

),
{%- else -%}
events as not materialized (

    select * from {{ ref('int_sessionized_events') }}

),
{%- endif %}

flagged_events as (

    select
        events.*,
        {{ counted_completion('events', 'first_completions') }} as completes_order,
        -- the landing event is the session's first event that carries page or campaign
        -- context, else its first event (a server-side event without context may come first)
        coalesce(
            events.page_url, events.page_path, events.page_referrer,
            events.utm_source, events.utm_medium, events.utm_campaign
        ) is not null as carries_landing_context,
        -- when the order of a completion was last decided (its first completion's load)
        first_completions.loaded_at as order_decided_at
    from events
    {#- every first completion: a displaced copy's order may have moved before scan_from #}
    {{ join_first_completions('events', ref('stg_orders'), 'first_completions') }}

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
        -- every landing field from one event, the landing event (carries_landing_context):
        -- an arg_min per column would skip NULLs and mix a later event's campaign into a
        -- direct landing
        arg_min(
            {
                'page_path': page_path,
                'page_url': page_url,
                'page_referrer': page_referrer,
                'utm_source': utm_source,
                'utm_medium': utm_medium,
                'utm_campaign': utm_campaign
            },
            (not carries_landing_context, event_at, message_id)
        ) as landing,
        -- the first event whose device is known (server-side events carry none)
        arg_min(device_class, (event_at, message_id)) filter (where device_class is not null)
            as device_class,
        count(distinct order_id) filter (where completes_order) as orders,
        coalesce(sum(revenue) filter (where completes_order), 0) as revenue,
        min(event_at) filter (where event_name = 'Product Added') as first_product_added_at,
        min(event_at) filter (where event_name = 'Order Completed') as first_order_at,
        greatest(max(loaded_at), max(order_decided_at)) as events_loaded_at
    from flagged_events
    group by tenant_id, session_id, device_id

),

landed as (

    select
        sessions.* exclude (landing),
        sessions.landing.page_path as landing_page,
        sessions.landing.page_url as landing_url,
        sessions.landing.page_referrer as referrer,
        sessions.landing.utm_source as utm_source,
        sessions.landing.utm_medium as utm_medium,
        sessions.landing.utm_campaign as utm_campaign
    from sessions

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
    from landed as sessions
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
        attributed.user_id_seen as session_user_id,
        {{ stitched_user_key('attributed.user_id_seen', 'attributed.device_id', 'identity.user_id') }} as user_key,
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
        attributed.first_product_added_at,
        attributed.first_order_at,
        greatest(attributed.events_loaded_at, identity.last_loaded_at) as last_loaded_at
    from attributed
    left join identity
        on attributed.tenant_id = identity.tenant_id
        and attributed.device_id = identity.anonymous_id

)

select * from final
{%- if is_incremental() %}

union all by name

select * from restamped
{%- else %}
-- in time order, so the small time ranges later runs read skip most row groups
order by session_start_at
{%- endif %}
