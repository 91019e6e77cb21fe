-- The "now" of each tenant for triggers: its latest event (the end of its latest session).
-- Triggers judge time against it, not the wall clock, so a pipeline that falls behind, a
-- replay or a test with simulated time judges exactly as a live run would have.

with

sessions as (

    select * from {{ ref('fct_sessions') }}

)

select
    tenant_id,
    max(session_end_at) as judged_at
from sessions
group by tenant_id
