-- Every trigger firing recorded by `lakepulse triggers fire`: one row per firing_id, with the
-- tenant, trigger, kind, user, when it fired, when its occurrence happened, the user's arm
-- (treatment or holdout) and the payload its destinations get. Firings are recorded outside
-- dbt, exactly once, in a Delta table: a full refresh or a replay re-reads it and never
-- fires again.

with

firings as not materialized (

    select * from {{ source('triggers', 'firings') }}

)

select
    firing_id,
    tenant_id,
    trigger,
    kind,
    user_id,
    fired_at,
    occurred_at,
    arm,
    payload,
    destinations,
    cast(fired_at as date) as fired_date
from firings
