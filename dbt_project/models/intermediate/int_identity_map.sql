-- Which user each anonymous id belongs to: the first user_id seen together with it (on an
-- identify, any call carrying both ids, or an alias). Lets sessions before a visitor signed
-- in count for the user they turned out to be. Incremental: only the anonymous ids that new
-- events pair with a user are reconsidered, against the row already kept for them (the
-- earliest pairing so far), so a run costs what was loaded, not the whole history.

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id', 'anonymous_id']}],
    )
}}

with

events as (

    select * from {{ ref('stg_events') }}
    {% if is_incremental() -%}
    where loaded_at > {{ incremental_watermark() }}
    {%- endif %}

),

new_pairs as (

    select tenant_id, anonymous_id, user_id, event_at, loaded_at, [user_id] as paired
    from events
    where anonymous_id is not null and user_id is not null

    union all

    select tenant_id, previous_id as anonymous_id, user_id, event_at, loaded_at, [user_id]
    from events
    where event_type = 'alias' and previous_id is not null

),

pairs as (

    select * from new_pairs

    {% if is_incremental() -%}
    union all

    -- the pairing already kept for the same anonymous ids
    select
        kept.tenant_id,
        kept.anonymous_id,
        kept.user_id,
        kept.identified_at,
        kept.last_loaded_at,
        kept.paired_user_ids
    from {{ this }} as kept
    semi join new_pairs
        on kept.tenant_id = new_pairs.tenant_id
        and kept.anonymous_id = new_pairs.anonymous_id
    {%- endif %}

),

first_user as (

    select
        tenant_id,
        anonymous_id,
        arg_min(user_id, (event_at, user_id)) as user_id,
        min(event_at) as identified_at,
        max(loaded_at) as last_loaded_at,
        list_sort(list_distinct(flatten(list(paired)))) as paired_user_ids
    from pairs
    group by tenant_id, anonymous_id

)

select * from first_user
