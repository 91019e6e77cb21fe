-- Anomaly alerts for BI: a drop in conversion rate or revenue detected on the live sliding
-- windows, with what was seen, what the previous hour predicted, and how unlikely the gap is.

with

alerts as (

    select * from {{ source('ops', 'alerts') }}

)

select
    alert_id,
    tenant_id,
    metric,
    minute_at,
    detected_at,
    current_value,
    baseline_value,
    relative_change,
    z_score,
    message
from alerts
