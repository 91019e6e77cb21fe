-- Visits (page, screen, track calls) cut into sessions per device: a new session starts with a
-- device's first event or after `session_timeout_minutes` without one. A session can run
-- across midnight; it belongs to the day it started.

with

events as (

    select * from {{ ref('stg_events') }}
    where event_type in ('page', 'screen', 'track')

),

with_device as (

    select
        *,
        coalesce(anonymous_id, user_id) as device_id
    from events

),

gaps as (

    select
        *,
        lag(event_at) over (
            partition by tenant_id, device_id order by event_at, message_id
        ) as previous_event_at
    from with_device

),

numbered as (

    select
        *,
        sum(
            case
                when previous_event_at is null then 1
                when event_at - previous_event_at
                    > to_minutes({{ var('session_timeout_minutes') }}::bigint) then 1
                else 0
            end
        ) over (
            partition by tenant_id, device_id
            order by event_at, message_id
            rows between unbounded preceding and current row
        ) as session_number
    from gaps

),

sessionized as (

    select
        *,
        min(event_at) over (
            partition by tenant_id, device_id, session_number
        ) as session_start_at
    from numbered

)

select
    *,
    md5(tenant_id || '|' || device_id || '|' || strftime(session_start_at, '%Y-%m-%dT%H:%M:%S.%f'))
        as session_id
from sessionized
