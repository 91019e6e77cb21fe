{#-
    dbt's `where` config for data tests, plus one placeholder: `__recent_loads__` keeps the rows
    loaded in the last `var('data_tests_recent_minutes')` minutes (`loaded_at`). For checks of
    single rows (not null, accepted values) on append-only event tables, the minute's build then
    checks what its loads brought instead of all history again. A full refresh, or the var set
    to null, checks every row.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where and '__recent_loads__' in where -%}
        {%- set where = where | replace('__recent_loads__', recent_loads() | trim) -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
