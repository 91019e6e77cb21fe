-- Funnel conversion per tenant, funnel, entry day, channel and device: users reaching each
-- step, step-to-step and overall conversion, and time from step 1 to each step.

-- Incremental by day: the (tenant, funnel, entry day) groups whose best attempts may have
-- changed since the last run (int_funnel_progress.last_loaded_at) are recounted; all of them
-- after a funnel definition changed in the seeds.

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id', 'funnel_id', 'entry_date']}],
        tombstone_if='step_number is null',
    )
}}

{%- set recount_everything = is_incremental() and funnel_definitions_changed(this) %}

with

all_progress as not materialized (

    select * from {{ ref('int_funnel_progress') }}

),

{% if is_incremental() -%}
progress as (

    select all_progress.*
    from all_progress
    semi join (
        select distinct tenant_id, funnel_id, entry_date
        from all_progress
        {%- if not recount_everything %}
        where last_loaded_at > {{ incremental_watermark() }}
        {%- endif %}
    ) as changed_days
        on all_progress.tenant_id = changed_days.tenant_id
        and all_progress.funnel_id = changed_days.funnel_id
        and all_progress.entry_date = changed_days.entry_date

),
{%- else -%}
progress as (

    select * from all_progress

),
{%- endif %}

steps as not materialized (

    select * from {{ ref('funnel_steps') }}

),

funnels as not materialized (

    select * from {{ ref('funnels') }}

),

reached as (

    select
        progress.tenant_id,
        progress.funnel_id,
        progress.entry_date,
        progress.channel,
        progress.device_class,
        steps.step_number,
        steps.event_name as step_event,
        progress.last_loaded_at,
        progress.funnel_version,
        date_diff(
            'second', progress.entry_at, progress.reached_at_by_step[steps.step_number]
        ) as seconds_to_step
    from progress
    inner join steps
        on progress.funnel_id = steps.funnel_id
        and steps.step_number <= progress.steps_reached

),

per_step as (

    select
        tenant_id,
        funnel_id,
        entry_date,
        channel,
        device_class,
        step_number,
        step_event,
        count(*) as users,
        quantile_cont(seconds_to_step, 0.5) as median_seconds_to_step,
        quantile_cont(seconds_to_step, 0.9) as p90_seconds_to_step,
        max(last_loaded_at) as last_loaded_at,
        any_value(funnel_version) as funnel_version
    from reached
    group by all

),

with_rates as (

    select
        per_step.*,
        first_value(users) over breakdown as entrants,
        lag(users) over breakdown as previous_step_users
    from per_step
    window breakdown as (
        partition by tenant_id, funnel_id, entry_date, channel, device_class
        order by step_number
    )

)

select
    with_rates.tenant_id,
    with_rates.funnel_id,
    funnels.order_mode,
    with_rates.entry_date,
    with_rates.channel,
    with_rates.device_class,
    with_rates.step_number,
    with_rates.step_event,
    with_rates.users,
    with_rates.entrants,
    cast(with_rates.users as double) / coalesce(with_rates.previous_step_users, with_rates.users)
        as step_conversion,
    cast(with_rates.users as double) / with_rates.entrants as overall_conversion,
    with_rates.median_seconds_to_step,
    with_rates.p90_seconds_to_step,
    with_rates.last_loaded_at,
    with_rates.funnel_version
from with_rates
inner join funnels
    on with_rates.funnel_id = funnels.funnel_id
{%- if recount_everything %}

-- a tombstone for every day kept: a day no attempt reaches any more (a funnel removed from the
-- seeds, a first step edited) goes, the others are replaced by their recount above
union all by name

select distinct tenant_id, funnel_id, entry_date
from {{ this }}
{%- endif %}
