-- Experiment exposures: every `Experiment Viewed` event with its experiment and variation.
-- The first exposure per user and the users seen in several variations are decided
-- downstream, where experiments are analysed. Incremental: newly loaded exposures are added.

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id', 'message_id']}],
    )
}}

with

events as (

    select * from {{ ref('stg_events') }}
    where event_name = 'Experiment Viewed'
    {%- if is_incremental() %}
        and loaded_at > {{ incremental_watermark('loaded_at') }}
    {%- endif %}

)

select
    tenant_id,
    message_id,
    visitor_id,
    user_id,
    anonymous_id,
    experiment_id,
    variation_id,
    event_at as exposed_at,
    device_class,
    loaded_at
from events
where experiment_id is not null and variation_id is not null
