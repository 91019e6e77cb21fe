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

with

sessions as (

    select * from {{ ref('int_sessions') }}

),

{% if is_incremental() -%}
changed as (

    select tenant_id, device_id, min(session_start_at) as changed_from
    from sessions
    where last_loaded_at > {{ incremental_watermark() }}
    group by tenant_id, device_id

),

final as (

    select sessions.*
    from sessions
    inner join changed
        on sessions.tenant_id = changed.tenant_id
        and sessions.device_id = changed.device_id
        and sessions.session_start_at >= changed.changed_from

)
{%- else -%}
final as (

    select * from sessions

)
{%- endif %}

select * from final
{%- if not is_incremental() %}
-- in time order, so the small time ranges later runs read skip most row groups
order by session_start_at
{%- endif %}
