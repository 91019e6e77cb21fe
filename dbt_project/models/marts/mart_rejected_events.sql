-- Rejected events per tenant, minute and reason: what the Operations dashboard charts to show
-- a broken SDK integration within minutes. Rebuilt whole each run: quarantine is kept 30 days
-- (LAKEPULSE_RETENTION_REJECTED_EVENTS_DAYS) and holds only bad events, so it stays small.

with

rejected as not materialized (

    select * from {{ ref('stg_rejected_events') }}

),

per_minute as (

    select
        tenant_id,
        {{ utc_minute('rejected_at') }} as rejected_minute,
        reason,
        count(*) as rejected_events,
        max(loaded_at) as last_loaded_at
    from rejected
    group by all

)

select * from per_minute
