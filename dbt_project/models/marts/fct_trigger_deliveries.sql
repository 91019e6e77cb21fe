-- One row per treatment firing x destination: where its delivery stands. Firings the
-- deliverer has not reached yet are `pending` with no attempt; the others take their latest
-- state row, and their attempts and first delivery from the whole history (a re-queued dead
-- letter keeps the attempts it had).

with

firings as not materialized (

    select * from {{ source('triggers', 'firings') }}

),

deliveries as not materialized (

    select * from {{ source('triggers', 'deliveries') }}

),

targets as (

    select
        firing_id, tenant_id, trigger, kind, user_id, fired_at,
        unnest(from_json(destinations, '["VARCHAR"]')) as destination
    from firings
    where arm = 'treatment' and json_valid(destinations)

),

history as (

    select
        firing_id,
        destination,
        count(*) filter (where status <> 'pending') as attempts,
        min(recorded_at) filter (where status <> 'pending') as first_attempt_at,
        min(delivered_at) as delivered_at,
        arg_max(status, recorded_at) as status,
        arg_max(last_status_code, recorded_at) as last_status_code,
        arg_max(last_error, recorded_at) as last_error,
        arg_max(next_attempt_at, recorded_at) as next_attempt_at,
        max(recorded_at) as updated_at
    from deliveries
    group by firing_id, destination

)

select
    targets.firing_id,
    targets.destination,
    targets.tenant_id,
    targets.trigger,
    targets.kind,
    targets.user_id,
    targets.fired_at,
    coalesce(history.status, 'pending') as status,
    coalesce(history.attempts, 0) as attempts,
    history.last_status_code,
    history.last_error,
    history.first_attempt_at,
    history.next_attempt_at,
    history.delivered_at,
    history.updated_at
from targets
left join history using (firing_id, destination)
