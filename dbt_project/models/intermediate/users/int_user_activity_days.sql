-- One row per user and day they had a session: the day they were first seen (their cohort
-- day) and what they spent that day. The grain mart_cohort_retention counts from, so the
-- retention grid is a group-by over narrow rows, not a join of every session to its user.
--
-- Incremental by user, like dim_users: the users whose sessions changed are recomputed whole
-- (a late session can move a user's first day, and so their cohort), and a device that
-- signed in leaves its anonymous rows (tombstones).

{{ config(tombstone_if='activity_date is null') }}

with

{{ affected_sessions_ctes(ref('int_sessions'), ref('int_identity_map')) }}

days as (

    select
        tenant_id,
        user_key,
        cast(session_start_at as date) as activity_date,
        min(session_start_at) as first_session_at,
        sum(revenue) as revenue,
        max(last_loaded_at) as last_loaded_at
    from sessions
    group by tenant_id, user_key, cast(session_start_at as date)

)

select
    tenant_id,
    user_key,
    cast(min(activity_date) over (partition by tenant_id, user_key) as date) as cohort_date,
    activity_date,
    first_session_at,
    revenue,
    last_loaded_at
from days
{{- affected_user_tombstones() }}
