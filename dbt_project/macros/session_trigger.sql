{#-
    The whole body of a session-level trigger kind: one candidate occurrence per session (its
    session_id the occurrence key, its user_key the user) that ended or was active in the last
    day before its tenant's clock, for each running trigger of `kind` that applies to the
    tenant and whose `condition` the session meets. Kinds that differ only in their condition,
    their time of occurrence and what the message carries are one call each.

    The expressions name the session `sessions`, the trigger's definitions row `definitions`
    (with `params` as typed columns) and the tenant's clock `clocks` (judged_at).
-#}
{% macro session_trigger(kind, params, sessions, clocks, occurred_at, payload_columns, condition) -%}
with

definitions as (

    {{ trigger_definitions(kind, params) }}

),

clocks as (

    select * from {{ clocks }}

),

recent_sessions as (

    select * from {{ sessions }}
    where session_start_at >= (select min(judged_at) from clocks) - interval 2 day

),

final as (

    select
        definitions.trigger,
        sessions.tenant_id,
        sessions.user_key as user_id,
        sessions.session_id as occurrence_key,
        {{ occurred_at }} as occurred_at,
        cast(json_object(
            {%- for column in payload_columns %}
            '{{ column }}', sessions.{{ column }}{{ "," if not loop.last }}
            {%- endfor %}
        ) as varchar) as payload
    from recent_sessions as sessions
    inner join clocks
        on sessions.tenant_id = clocks.tenant_id
    inner join definitions
        on {{ trigger_applies('definitions', 'sessions.tenant_id') }}
    where ({{ condition }})
        and sessions.session_end_at >= clocks.judged_at - interval 1 day

)

select * from final
{%- endmacro %}
