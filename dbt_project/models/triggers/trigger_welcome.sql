-- Kind `welcome`: a user's first identify, i.e. the first time their user_id is seen with a
-- device (an identify, or any call carrying both ids; int_identity_map). One occurrence per
-- user, for users first identified in the last day.

with

definitions as (

    {{ trigger_definitions('welcome', {}) }}

),

clocks as not materialized (

    select * from {{ ref('int_session_clocks') }}

),

identities as not materialized (

    select * from {{ ref('int_identity_map') }}

),

first_identified as (

    select tenant_id, user_id, min(identified_at) as identified_at
    from identities
    group by tenant_id, user_id

),

final as (

    select
        definitions.trigger,
        first_identified.tenant_id,
        first_identified.user_id,
        'first_identify' as occurrence_key,
        first_identified.identified_at as occurred_at,
        cast(json_object(
            'user_id', first_identified.user_id,
            'identified_at', first_identified.identified_at
        ) as varchar) as payload
    from first_identified
    inner join clocks
        on first_identified.tenant_id = clocks.tenant_id
    inner join definitions
        on {{ trigger_applies('definitions', 'first_identified.tenant_id') }}
    where first_identified.identified_at >= clocks.judged_at - interval 1 day

)

select * from final
