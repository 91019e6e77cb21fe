-- Which user each anonymous id belongs to: the first user_id seen together with it (on an
-- identify, any call carrying both ids, or an alias). Lets sessions before a visitor signed
-- in count for the user they turned out to be.

with

events as (

    select * from {{ ref('stg_events') }}

),

pairs as (

    select tenant_id, anonymous_id, user_id, event_at
    from events
    where anonymous_id is not null and user_id is not null

    union all

    select tenant_id, previous_id as anonymous_id, user_id, event_at
    from events
    where event_type = 'alias' and previous_id is not null

),

first_user as (

    select
        tenant_id,
        anonymous_id,
        arg_min(user_id, event_at) as user_id,
        min(event_at) as identified_at
    from pairs
    group by tenant_id, anonymous_id

)

select * from first_user
