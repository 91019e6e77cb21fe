{#-
    Incremental strategy `replace_scope`: the batch a model computes replaces, in the existing
    table, every row in the batch's scope, then is inserted. A model names its scopes in
    `config(replace_scope=[...])`, each a dict:

      keys   the columns that identify a unit of recomputation (a device, a user, a minute)
      since  optional: only the unit's rows at or after the batch's earliest value of this
             column are replaced (a device's sessions from the first one a new event touched)

    Rows are deleted when they match any scope. Unlike `delete+insert`, a unit whose rows
    disappear (two sessions merged by a late event) is removed as long as the batch recomputes
    that unit, and nothing is merged row by row: the batch is the truth for its scope.

    A unit can also vanish altogether (an anonymous device's user_key once it signs in: its
    rows now belong to the user). The batch then carries a *tombstone* for it, a row with only
    the keys set; `config(tombstone_if='<condition>')` tells them apart (e.g. `sessions is
    null`). Tombstones delete their scope and are not inserted.
-#}
{% macro get_incremental_replace_scope_sql(arg_dict) %}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set batch = arg_dict["temp_relation"] -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
    {%- set scopes = config.require("replace_scope") -%}
    {%- for scope in scopes %}
    {%- if scope.get("since") %}
    {#- The batch's earliest `since` as a literal too: DuckDB then skips the row groups of the
        table that end before it (by their min/max statistics) instead of reading them all. -#}
    {%- set floor = query_literal(
        "select cast(min(" ~ scope["since"] ~ ") as varchar) from " ~ batch, "timestamptz"
    ) %}
    {%- endif %}
    delete from {{ target }} as existing
    where
    {%- if scope.get("since") %}
        existing.{{ scope["since"] }} >= {{ floor }} and
    {%- endif %}
        exists (
        select 1
        from (
            select {{ scope["keys"] | join(", ") }}
            {%- if scope.get("since") %}, min({{ scope["since"] }}) as replace_since{% endif %}
            from {{ batch }}
            group by all
        ) as scope
        where
            {%- for key in scope["keys"] %}
            existing.{{ key }} = scope.{{ key }} and
            {%- endfor %}
            {%- if scope.get("since") %}
            existing.{{ scope["since"] }} >= scope.replace_since
            {%- else %}
            true
            {%- endif %}
    );
    {%- endfor %}
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ batch }}
    {%- if config.get("tombstone_if") %}
    where not coalesce({{ config.get("tombstone_if") }}, false)
    {%- endif %};
{% endmacro %}
