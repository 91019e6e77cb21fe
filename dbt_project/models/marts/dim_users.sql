-- One row per user (signed-in user, else anonymous device): when first and last seen, the
-- channel that brought them, and what they have bought. Incremental by user: the users whose
-- sessions changed are re-aggregated, and a device that signed in leaves its anonymous row.

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id', 'user_key']}],
        tombstone_if='sessions is null',
    )
}}

with

{{ affected_sessions_ctes(ref('int_sessions'), ref('int_identity_map')) }}

users as (

    select
        tenant_id,
        user_key,
        max(user_id) as user_id,
        min(session_start_at) as first_seen_at,
        max(session_end_at) as last_seen_at,
        -- the first session's, NULLs included: arg_min(utm_campaign, ...) alone would skip a
        -- direct first visit and credit the next campaign session
        arg_min(
            {'session_id': session_id, 'channel': channel, 'utm_campaign': utm_campaign},
            (session_start_at, session_id)
        ) as acquisition,
        arg_min(device_class, (session_start_at, session_id)) filter (
            where device_class is not null
        ) as first_device_class,
        count(*) as sessions,
        count(distinct device_id) as devices,
        cast(sum(orders) as bigint) as orders,
        sum(revenue) as revenue,
        min(session_start_at) filter (where converted) as first_order_session_at,
        max(last_loaded_at) as last_loaded_at
    from sessions
    group by tenant_id, user_key

)

select
    tenant_id,
    user_key,
    user_id,
    first_seen_at,
    last_seen_at,
    acquisition.channel as acquisition_channel,
    acquisition.utm_campaign as acquisition_campaign,
    acquisition.session_id as acquisition_session_id,
    first_device_class,
    sessions,
    devices,
    orders,
    revenue,
    first_order_session_at,
    user_id is not null as is_identified,
    cast(first_seen_at as date) as first_seen_date,
    last_loaded_at
from users
{{- affected_user_tombstones() }}
