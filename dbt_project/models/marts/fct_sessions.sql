-- One row per session, as BI reads it: the published face of int_sessions, where sessions are
-- built (and where every model downstream reads them), row for row the same.
--
-- Incremental by device, with int_sessions' scopes: each device that has a session loaded
-- since the last run (last_loaded_at) is copied from its earliest such session on. An
-- int_sessions run replaces a device's sessions from one whose last_loaded_at it moves past
-- the watermark (a new event, a decided order, a restamp all do), so that copy also removes
-- the sessions a late event merged away.

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id', 'device_id'], 'since': 'session_start_at'}],
    )
}}

{%- if is_incremental() %}
{%- set changed %}
    select tenant_id, device_id, min(session_start_at) as changed_from
    from {{ ref('int_sessions') }}
    where last_loaded_at > {{ incremental_watermark() }}
    group by tenant_id, device_id
{%- endset %}
{#- a literal lower bound too, so the sessions' older row groups are skipped, not joined -#}
{%- set copy_from = query_literal(
    "select cast(min(changed_from) as varchar) from (" ~ changed ~ ")", "timestamptz"
) %}
{%- endif %}

select sessions.*
from {{ ref('int_sessions') }} as sessions
{%- if is_incremental() %}
inner join ({{ changed }}) as changed
    on sessions.tenant_id = changed.tenant_id
    and sessions.device_id = changed.device_id
    and sessions.session_start_at >= changed.changed_from
where sessions.session_start_at >= {{ copy_from }}
{%- else %}
-- in time order, so the small time ranges later runs read skip most row groups
order by sessions.session_start_at
{%- endif %}
