-- Kind `browse_no_cart`: at least `min_minutes` of activity in a session (its first to its
-- latest event) with no `Product Added` so far. Fires while the session may still go on (a
-- discount offered to a visitor still browsing); one occurrence per session, for sessions
-- active in the last day.

with

definitions as (

    {{ trigger_definitions('browse_no_cart', {'min_minutes': 'double'}) }}

),

clocks as (

    select * from {{ ref('int_tenant_clocks') }}

),

recent_sessions as (

    select * from {{ ref('fct_sessions') }}
    where session_start_at >= (select min(judged_at) from clocks) - interval 2 day

),

final as (

    select
        definitions.trigger,
        recent_sessions.tenant_id,
        recent_sessions.user_key as user_id,
        recent_sessions.session_id as occurrence_key,
        recent_sessions.session_start_at + {{ minutes_interval('definitions.min_minutes') }}
            as occurred_at,
        cast(json_object(
            'user_id', recent_sessions.user_id,
            'session_id', recent_sessions.session_id,
            'landing_page', recent_sessions.landing_page,
            'page_views', recent_sessions.page_views,
            'duration_s', recent_sessions.duration_s
        ) as varchar) as payload
    from recent_sessions
    inner join clocks
        on recent_sessions.tenant_id = clocks.tenant_id
    inner join definitions
        on {{ trigger_applies('definitions', 'recent_sessions.tenant_id') }}
    where recent_sessions.first_product_added_at is null
        and recent_sessions.duration_s >= definitions.min_minutes * 60
        and recent_sessions.session_end_at >= clocks.judged_at - interval 1 day

)

select * from final
