-- The tenants' clocks (int_tenant_clocks) as the session tier's turn saw them: the clock the
-- session tier's triggers and predictions judge time against.
--
-- Why a copy: the live tier moves int_tenant_clocks every few seconds, also between the waves
-- of a session turn (lakepulse/warehouse/tiers.py). A session model that read the live clock
-- had to be built in the turn's first wave, beside the sessions and buyer signals it judges,
-- so that both are of one state of the events. This copy is taken in that first wave, and the
-- models reading it are built in a later one, against the same clock, while the live tier's
-- cycles run between the waves.

with

clocks as (

    select * from {{ ref('int_tenant_clocks') }}

)

select tenant_id, judged_at, last_loaded_at from clocks
