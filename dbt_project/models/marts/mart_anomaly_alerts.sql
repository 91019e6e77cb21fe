-- Anomaly alerts for BI: the firings of the `anomaly` trigger kind (a drop in conversion rate
-- or revenue in the live sliding windows, models/triggers/trigger_anomaly.sql), with what was
-- seen, what the previous hour predicted, and how unlikely the gap is.

with

firings as (

    select * from {{ ref('fct_trigger_firings') }}
    where kind = 'anomaly'

)

select
    firing_id as alert_id,
    tenant_id,
    json_extract_string(payload, '$.metric') as metric,
    occurred_at as minute_at,
    fired_at as detected_at,
    cast(json_extract(payload, '$.current_value') as double) as current_value,
    cast(json_extract(payload, '$.baseline_value') as double) as baseline_value,
    cast(json_extract(payload, '$.relative_change') as double) as relative_change,
    cast(json_extract(payload, '$.z_score') as double) as z_score,
    json_extract_string(payload, '$.message') as message
from firings
