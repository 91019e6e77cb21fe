-- How far each funnel attempt got. An attempt starts at any step-1 event; each next step is
-- the earliest matching event after the previous step (ordered) or the very next event
-- (strict), within the conversion window from step 1. Per user, funnel and day the attempt
-- that got furthest (then the earliest) is kept.
--
-- Incremental by user, like int_funnel_events. `last_loaded_at` is the latest load among the
-- attempt's events and the user's events that day, so mart_funnel_conversion recounts only
-- the days whose best attempts may have changed. Editing, adding or removing a funnel in the
-- seeds changes its `funnel_version`: the next run recomputes every user once.

{{ config(tombstone_if='funnel_id is null') }}

{#- Relations the macros read, named outside any condition so dbt sees the refs when parsing. -#}
{%- set sessions = ref('int_sessions') %}
{%- set identity_map = ref('int_identity_map') %}
{%- set recompute_everyone = is_incremental() and funnel_definitions_changed(this) %}

with recursive

funnels as not materialized (

    select * from {{ ref('funnels') }}

),

steps as not materialized (

    select * from {{ ref('funnel_steps') }}

),

versions as (

    {{ funnel_versions() }}

),

all_events as not materialized (

    select * from {{ ref('int_funnel_events') }}

),

{% if is_incremental() -%}
affected as (

    {% if recompute_everyone -%}
    -- every user, and every key kept from before: one no user holds any more (a device that
    -- signed in, a device aliased to another user) gets its tombstone too
    select distinct tenant_id, user_key from all_events

    union

    select distinct tenant_id, user_key from {{ this }}
    {%- else -%}
    {{ affected_user_keys(sessions, identity_map, incremental_watermark()) }}
    {%- endif %}

),
{%- endif %}

events as (

    {{ of_affected_users('all_events', since='event_at', sessions=sessions) }}

),

progress (
    tenant_id, funnel_id, user_key, entry_message_id, entry_at, channel, device_class,
    step_number, reached_at, reached_seq, loaded_at
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
        events.event_seq,
        events.last_loaded_at
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
        -- the step's first matching event; event_seq breaks a tie on event_at, so increments
        -- and full refreshes pick the same one
        arg_min(events.event_seq, (events.event_at, events.event_seq)),
        greatest(
            any_value(progress.loaded_at),
            arg_min(events.last_loaded_at, (events.event_at, events.event_seq))
        )
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
        map_from_entries(list((step_number, reached_at))) as reached_at_by_step,
        max(loaded_at) as attempt_loaded_at
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

),

day_loads as (

    select
        tenant_id,
        user_key,
        cast(event_at as date) as entry_date,
        max(last_loaded_at) as day_loaded_at
    from events
    group by all

)

select
    best_per_day.* exclude (attempt_loaded_at),
    greatest(best_per_day.attempt_loaded_at, day_loads.day_loaded_at) as last_loaded_at,
    versions.funnel_version
from best_per_day
inner join versions
    on best_per_day.funnel_id = versions.funnel_id
inner join day_loads
    on best_per_day.tenant_id = day_loads.tenant_id
    and best_per_day.user_key = day_loads.user_key
    and best_per_day.entry_date = day_loads.entry_date
{{- affected_user_tombstones() }}
