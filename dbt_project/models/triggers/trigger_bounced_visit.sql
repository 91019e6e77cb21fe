-- Kind `bounced_visit`: a session of one page view shorter than `max_seconds`, known to be
-- over (`session_timeout_minutes` passed without another event, at the tenant's latest
-- event). One occurrence per session, for sessions that ended in the last day.

{%- set timeout = minutes_interval(var('session_timeout_minutes')) %}

with

definitions as (

    {{ trigger_definitions('bounced_visit', {'max_seconds': 'double'}) }}

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
        recent_sessions.session_end_at + {{ timeout }} as occurred_at,
        cast(json_object(
            'user_id', recent_sessions.user_id,
            'session_id', recent_sessions.session_id,
            'landing_page', recent_sessions.landing_page,
            'channel', recent_sessions.channel,
            'duration_s', recent_sessions.duration_s
        ) as varchar) as payload
    from recent_sessions
    inner join clocks
        on recent_sessions.tenant_id = clocks.tenant_id
    inner join definitions
        on {{ trigger_applies('definitions', 'recent_sessions.tenant_id') }}
    where recent_sessions.page_views = 1
        and recent_sessions.duration_s < definitions.max_seconds
        and recent_sessions.session_end_at <= clocks.judged_at - {{ timeout }}
        and recent_sessions.session_end_at >= clocks.judged_at - interval 1 day

)

select * from final
