-- The "now" of each tenant for triggers: its latest visit event (page, screen or track; the
-- visits int_sessionized_events cuts into sessions), which is the end of its latest session.
-- Triggers judge time against it, not the wall clock, so a pipeline that falls behind, a
-- replay or a test with simulated time judges exactly as a live run would have.
--
-- Read from the events, not from int_sessions: the clock is in the `live` tier, where the
-- anomaly and metric_threshold kinds judge every few seconds, and a live model never waits for
-- a slower tier. Incremental: stg_events only ever gains rows (the first copy of a message
-- wins), so the latest event is the later of the kept clock and the newly loaded events'.

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id']}],
    )
}}

with

events as (

    select * from {{ ref('stg_events') }}
    where event_type in ('page', 'screen', 'track') and event_name is distinct from 'Trigger Fired'
    {%- if is_incremental() %}
        and loaded_at > {{ incremental_watermark() }}
    {%- endif %}

),

new_clocks as (

    select
        tenant_id,
        max(event_at) as judged_at,
        max(loaded_at) as last_loaded_at
    from events
    group by tenant_id

),

{% if is_incremental() -%}
clocks as (

    select
        new_clocks.tenant_id,
        greatest(new_clocks.judged_at, kept.judged_at) as judged_at,
        new_clocks.last_loaded_at
    from new_clocks
    left join {{ this }} as kept
        on new_clocks.tenant_id = kept.tenant_id

)
{%- else -%}
clocks as (

    select * from new_clocks

)
{%- endif %}

select * from clocks
