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

    A model whose published rows have a unique key (`config: meta: publish: delta_key: [...]`)
    also keeps a *change log* (`change_log_relation`): in the same transaction as the replace, the
    keys of the rows it deleted and of the rows it inserted, stamped with the build's sequence
    number. The publish reads the keys logged since the build it last published and sends those
    rows only, instead of hashing every row of a table with millions of users to find them. A
    build that is not incremental (the first, a full refresh) drops the log
    (`reset_change_log`, a pre-hook of every model), and the publish then copies the table whole
    and starts from the new log.
-#}
{% macro get_incremental_replace_scope_sql(arg_dict) %}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set batch = arg_dict["temp_relation"] -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
    {%- set scopes = config.require("replace_scope") -%}
    {%- set delta_key = change_log_key() -%}
    {%- set inserted = "not coalesce(" ~ config.get("tombstone_if") ~ ", false)"
        if config.get("tombstone_if") else "true" -%}
    {%- if delta_key %}
    {%- set log = change_log_relation(target) %}
    create schema if not exists {{ log.schema }};
    create table if not exists {{ log }} as
    select {{ delta_key | join(", ") }}, 0::bigint as change_seq, ''::varchar as generation
    from {{ target }}
    where false;
    set variable lakepulse_change_seq = (select coalesce(max(change_seq), 0) + 1 from {{ log }});
    set variable lakepulse_change_generation = (
        select coalesce(max(generation), cast(uuid() as varchar)) from {{ log }}
    );
    {%- endif %}
    {%- for scope in scopes %}
    {%- if scope.get("since") %}
    {#- The batch's earliest `since` as a literal too: DuckDB then skips the row groups of the
        table that end before it (by their min/max statistics) instead of reading them all. -#}
    {%- set floor = query_literal(
        "select cast(min(" ~ scope["since"] ~ ") as varchar) from " ~ batch, "timestamptz"
    ) %}
    {%- else %}
    {%- set floor = none %}
    {%- endif %}
    {%- if delta_key %}
    {#- The rows in scope are found once, with their row ids, then logged and deleted by row
        id: finding them joins every row's scope keys (strings, millions of users) to the
        batch's, and logging and deleting each did it again. Row ids stay put within the
        transaction, which changes the target only here. -#}
    {%- set replaced = '"' ~ batch.identifier ~ '__replaced"' %}
    create or replace temporary table {{ replaced }} as
    select existing.rowid as replaced_row_id, {% for key in delta_key %}existing.{{ key }}{{ ", " if not loop.last }}{% endfor %}
    from {{ target }} as existing
    where {{ in_replace_scope(scope, batch, floor) }};
    insert into {{ log }}
    select distinct
        {% for key in delta_key %}{{ key }}, {% endfor -%}
        getvariable('lakepulse_change_seq'), getvariable('lakepulse_change_generation')
    from {{ replaced }};
    delete from {{ target }}
    where rowid in (select replaced_row_id from {{ replaced }});
    drop table {{ replaced }};
    {%- else %}
    delete from {{ target }} as existing
    where {{ in_replace_scope(scope, batch, floor) }};
    {%- endif %}
    {%- endfor %}
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ batch }}
    where {{ inserted }};
    {%- if delta_key %}
    insert into {{ log }}
    select distinct
        {{ delta_key | join(", ") }},
        getvariable('lakepulse_change_seq'),
        getvariable('lakepulse_change_generation')
    from {{ batch }}
    where {{ inserted }};
    {#- A publish further behind than `publish_log_builds` builds copies the table whole. -#}
    delete from {{ log }}
    where change_seq <= getvariable('lakepulse_change_seq') - {{ var('publish_log_builds') | int }};
    {%- endif %}
{% endmacro %}

{% macro in_replace_scope(scope, batch, floor) %}
    {#- Whether the row `existing` of the target lies in the batch's `scope` (from `floor`, the
        batch's earliest `since`, when the scope has one). -#}
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
    )
{%- endmacro %}

{% macro change_log_key() %}
    {#- The published unique key of the model being built (`config: meta: publish: delta_key`),
        if any. -#}
    {%- set publish = (config.get("meta") or {}).get("publish") %}
    {{ return(publish.get("delta_key") if publish is mapping else none) }}
{% endmacro %}

{% macro change_log_relation(relation) %}
    {#- Where a model's change log lives: schema `publish_log`, table `<model>__changes`. -#}
    {{ return(api.Relation.create(
        database=relation.database,
        schema="publish_log",
        identifier=relation.identifier ~ "__changes",
    )) }}
{% endmacro %}

{% macro reset_change_log() %}
    {#- A pre-hook of every model: a build that is not incremental (the first, a full refresh)
        drops the model's change log, in its transaction, so no publish reads keys logged
        against the table it replaces. -#}
    {%- if execute and config.get("materialized") == "incremental" and change_log_key()
        and not is_incremental() %}
    drop table if exists {{ change_log_relation(this) }}
    {%- endif %}
{% endmacro %}
