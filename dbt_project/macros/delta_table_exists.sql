{#-
    Whether the Delta table at `path` has been created (it has a transaction log). Bronze's
    `events_rejected` only exists after the first rejected event; a model over it selects an
    empty typed relation until then instead of failing. False at parse time (no queries run).
-#}
{% macro delta_table_exists(path) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set found = run_query(
        "select count(*) from glob('" ~ path ~ "/_delta_log/*.json')"
    ).columns[0].values()[0] -%}
    {{ return(found > 0) }}
{%- endmacro %}
