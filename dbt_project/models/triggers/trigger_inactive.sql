-- Kind `inactive`: a user with at least one order and no session for `days`. One occurrence
-- per absence (keyed by the last session's end), for users who crossed the threshold in the
-- last day (no flood for long-gone buyers on the first deploy).

with

definitions as (

    {{ trigger_definitions('inactive', {'days': 'double'}) }}

),

clocks as not materialized (

    select * from {{ ref('int_session_clocks') }}

),

buyers as (

    select * from {{ ref('int_buyer_signals') }}
    where orders > 0

),

final as (

    select
        definitions.trigger,
        buyers.tenant_id,
        buyers.user_key as user_id,
        strftime(buyers.last_seen_at, '%Y-%m-%dT%H:%M:%S.%f') as occurrence_key,
        buyers.last_seen_at + {{ minutes_interval('definitions.days * 1440') }} as occurred_at,
        cast(json_object(
            'user_id', buyers.user_id,
            'last_seen_at', buyers.last_seen_at,
            'orders', buyers.orders,
            'lifetime_revenue', buyers.lifetime_revenue
        ) as varchar) as payload
    from buyers
    inner join clocks
        on buyers.tenant_id = clocks.tenant_id
    inner join definitions
        on {{ trigger_applies('definitions', 'buyers.tenant_id') }}
    where buyers.last_seen_at <= clocks.judged_at - {{ minutes_interval('definitions.days * 1440') }}
        and buyers.last_seen_at
            > clocks.judged_at - {{ minutes_interval('(definitions.days + 1) * 1440') }}

)

select * from final
