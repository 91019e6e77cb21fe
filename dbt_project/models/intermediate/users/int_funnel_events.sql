-- The events funnels are computed on: every page, screen and track event with its user (as
-- stitched in int_sessions), its position in the user's stream, and the channel and device of
-- its session. Incremental by user: every event of each user whose sessions changed (and of
-- every key their devices had before) is renumbered.

{{ config(tombstone_if='message_id is null') }}

with

events as not materialized (

    select * from {{ ref('int_sessionized_events') }}

),

all_sessions as (

    select
        tenant_id, session_id, user_key, channel, device_class, session_start_at, last_loaded_at
    from {{ ref('int_sessions') }}

),

{{ affected_sessions_ctes(ref('int_sessions'), ref('int_identity_map'), rows='all_sessions') }}

joined as (

    select
        events.tenant_id,
        sessions.user_key,
        events.message_id,
        events.event_name,
        events.event_at,
        sessions.channel,
        sessions.device_class,
        sessions.last_loaded_at
    from events
    inner join sessions
        on events.tenant_id = sessions.tenant_id
        and events.session_id = sessions.session_id
    {%- if is_incremental() %}
    -- no event is older than its session: DuckDB then skips the older row groups
    where events.event_at >= (select min(session_start_at) from sessions)
    {%- endif %}

),

numbered as (

    select
        *,
        row_number() over (
            partition by tenant_id, user_key order by event_at, message_id
        ) as event_seq
    from joined

)

select * from numbered
{{- affected_user_tombstones() }}
