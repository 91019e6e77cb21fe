-- How far each funnel attempt got. An attempt starts at any step-1 event; each next step is
-- the earliest matching event after the previous step (ordered) or the very next event
-- (strict), within the conversion window from step 1. Per user, funnel and day the attempt
-- that got furthest (then the earliest) is kept.

with recursive

funnels as (

    select * from {{ ref('funnels') }}

),

steps as (

    select * from {{ ref('funnel_steps') }}

),

events as (

    select * from {{ ref('int_funnel_events') }}

),

progress (
    tenant_id, funnel_id, user_key, entry_message_id, entry_at, channel, device_class,
    step_number, reached_at, reached_seq
) as (

    select
        events.tenant_id,
        steps.funnel_id,
        events.user_key,
        events.message_id,
        events.event_at,
        events.channel,
        events.device_class,
        1,
        events.event_at,
        events.event_seq
    from events
    inner join steps
        on steps.step_number = 1 and events.event_name = steps.event_name

    union all

    select
        progress.tenant_id,
        progress.funnel_id,
        progress.user_key,
        progress.entry_message_id,
        progress.entry_at,
        progress.channel,
        progress.device_class,
        progress.step_number + 1,
        min(events.event_at),
        arg_min(events.event_seq, events.event_at)
    from progress
    inner join funnels
        on progress.funnel_id = funnels.funnel_id
    inner join steps
        on steps.funnel_id = progress.funnel_id
        and steps.step_number = progress.step_number + 1
    inner join events
        on events.tenant_id = progress.tenant_id
        and events.user_key = progress.user_key
        and events.event_name = steps.event_name
        and events.event_seq > progress.reached_seq
        and events.event_at
            <= progress.entry_at + to_minutes(funnels.conversion_window_minutes::bigint)
        and (funnels.order_mode = 'ordered' or events.event_seq = progress.reached_seq + 1)
    group by all

),

attempts as (

    select
        tenant_id,
        funnel_id,
        user_key,
        entry_message_id,
        any_value(entry_at) as entry_at,
        any_value(channel) as channel,
        any_value(device_class) as device_class,
        max(step_number) as steps_reached,
        map_from_entries(list((step_number, reached_at))) as reached_at_by_step
    from progress
    group by tenant_id, funnel_id, user_key, entry_message_id

),

best_per_day as (

    select
        *,
        cast(entry_at as date) as entry_date
    from attempts
    qualify row_number() over (
        partition by tenant_id, funnel_id, user_key, cast(entry_at as date)
        order by steps_reached desc, entry_at, entry_message_id
    ) = 1

)

select * from best_per_day
