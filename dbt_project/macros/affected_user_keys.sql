{#-
    The users an incremental user-level model must recompute: the users of `sessions` changed
    since `watermark` (their last_loaded_at), and every user_key those sessions' devices may
    have had before (the device itself while anonymous, and each user_id it was ever seen with
    in `identity_map`), so rows kept under a key a device no longer has are replaced too.
-#}
{% macro affected_user_keys(sessions, identity_map, watermark) -%}
    with changed_sessions as (

        select tenant_id, device_id, user_key
        from {{ sessions }}
        where last_loaded_at > {{ watermark }}

    )

    select tenant_id, user_key from changed_sessions

    union

    select tenant_id, device_id from changed_sessions

    union

    select identity.tenant_id, unnest(identity.paired_user_ids)
    from {{ identity_map }} as identity
    semi join changed_sessions
        on identity.tenant_id = changed_sessions.tenant_id
        and identity.anonymous_id = changed_sessions.device_id
{%- endmacro %}

{#-
    The CTE every incremental user-level model starts from, written once: `<name> as (...)`,
    the affected users of `affected_user_keys`, followed by a comma; nothing in a full build
    (every user is recomputed). Place it among the model's CTEs, after the import CTEs.
-#}
{% macro affected_users_cte(sessions, identity_map, name='affected') -%}
    {%- if is_incremental() %}
{{ name }} as (

    {{ affected_user_keys(sessions, identity_map, incremental_watermark()) }}

),
    {%- endif %}
{%- endmacro %}

{#-
    The rows of `relation` (a model or a CTE name) that belong to the `affected` users (the
    CTE named by `affected`); all rows in a full build.

    A model (a table: `ref(...)`) is read by row id (`rows_by_row_id`), so only the kept
    rows' other columns are read.

    since: a timestamp column of `relation` no earlier than the start of the row's session
    (an event's time), with `sessions` the sessions relation. The rows are then also bounded by
    the affected users' earliest session, which lets DuckDB skip the row groups of older history
    instead of reading every row.
-#}
{% macro of_affected_users(relation, affected='affected', since=none, sessions=none) -%}
    {%- if relation is not string and since is none -%}
    {%- if is_incremental() -%}
    {{ rows_by_row_id(relation, affected, {
        'tenant_id': affected ~ '.tenant_id', 'user_key': affected ~ '.user_key'
    }) }}
    {%- else -%}
    select * from {{ relation }}
    {%- endif -%}
    {%- else -%}
    select {{ relation }}.*
    from {{ relation }}
    {%- if is_incremental() %}
    semi join {{ affected }}
        on {{ relation }}.tenant_id = {{ affected }}.tenant_id
        and {{ relation }}.user_key = {{ affected }}.user_key
    {%- if since is not none %}
    {%- if sessions is none %}
        {{ exceptions.raise_compiler_error("of_affected_users: `since` needs `sessions`") }}
    {%- endif %}
    where {{ relation }}.{{ since }} >= (
        select min(sessions.session_start_at)
        from {{ sessions }} as sessions
        semi join {{ affected }}
            on sessions.tenant_id = {{ affected }}.tenant_id
            and sessions.user_key = {{ affected }}.user_key
    )
    {%- endif %}
    {%- endif %}
    {%- endif %}
{%- endmacro %}

{#-
    Ends a user-level model's select in an incremental run: a tombstone (keys only) for every
    user in `affected`, so the keys a device no longer has are emptied too (see replace_scope).
-#}
{% macro affected_user_tombstones(affected='affected') -%}
    {%- if is_incremental() %}

-- a tombstone per affected user: keys a device no longer has are emptied too
union all by name

select tenant_id, user_key from {{ affected }}
    {%- endif %}
{%- endmacro %}

{#-
    The rows of `relation` (raw user_id and anonymous_id columns, before stitching) that may
    belong to the `affected` users: a row with a user_id belongs to that user; one without
    belongs to its device's key or to the user the device signed in as (`identity_map`), so
    its device must be an affected key or a device of an affected user. A superset, found with
    one semi join, that spares the identity join for everyone else; `of_affected_users` after
    the stitching decides exactly. All rows in a full build.
-#}
{% macro possibly_of_affected_users(relation, identity_map, affected='affected') -%}
    select {{ relation }}.*
    from {{ relation }}
    {%- if is_incremental() %}
    semi join (
        select tenant_id, user_key from {{ affected }}

        union

        select devices.tenant_id, devices.anonymous_id
        from {{ identity_map }} as devices
        semi join {{ affected }}
            on devices.tenant_id = {{ affected }}.tenant_id
            and devices.user_id = {{ affected }}.user_key
    ) as scope
        on {{ relation }}.tenant_id = scope.tenant_id
        and coalesce({{ relation }}.user_id, {{ relation }}.anonymous_id) = scope.user_key
    {%- endif %}
{%- endmacro %}

{#-
    The opening that user-level models built from sessions share, written once: the
    `affected_users_cte` of `sessions` (a relation: int_sessions) and `identity_map`, then
    `<name> as (...)`, the rows of `rows` (default: the sessions model itself, read by row
    id; or the model's import CTE of its columns) that belong to the affected users
    (`of_affected_users`; every row in a full build), followed by a comma. Place it right after
    the import CTEs.
-#}
{% macro affected_sessions_ctes(sessions, identity_map, rows=none, name='sessions') -%}
{{ affected_users_cte(sessions, identity_map) }}

{{ name }} as (

    {{ of_affected_users(rows if rows is not none else sessions) }}

),
{%- endmacro %}
