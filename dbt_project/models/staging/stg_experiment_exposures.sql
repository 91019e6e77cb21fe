-- Experiment exposures: every `Experiment Viewed` event with its experiment and variation.
-- The first exposure per user and the users seen in several variations are decided
-- downstream, where experiments are analysed.

with

events as (

    select * from {{ ref('stg_events') }}
    where event_name = 'Experiment Viewed'

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
    device_class
from events
where experiment_id is not null and variation_id is not null
