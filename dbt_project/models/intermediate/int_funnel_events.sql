-- The events funnels are computed on: every page, screen and track event with its user (as
-- stitched in fct_sessions), its position in the user's stream, and the channel and device of
-- its session.

with

events as (

    select * from {{ ref('int_sessionized_events') }}

),

sessions as (

    select tenant_id, session_id, user_key, channel, device_class
    from {{ ref('fct_sessions') }}

),

joined as (

    select
        events.tenant_id,
        sessions.user_key,
        events.message_id,
        events.event_name,
        events.event_at,
        sessions.channel,
        sessions.device_class
    from events
    inner join sessions
        on events.tenant_id = sessions.tenant_id
        and events.session_id = sessions.session_id

)

select
    *,
    row_number() over (
        partition by tenant_id, user_key order by event_at, message_id
    ) as event_seq
from joined
