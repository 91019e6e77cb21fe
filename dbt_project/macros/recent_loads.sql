{#-
    The window of rows a minute's data tests look at: loaded (`column`) in the last
    `var('data_tests_recent_minutes')` minutes. `true` (every row) on a full refresh or when the
    var is null. Used by `lakepulse_unique_combination` (`recent:`) and `__recent_loads__`.
-#}
{% macro recent_loads(column='loaded_at') -%}
    {%- set minutes = var('data_tests_recent_minutes', none) -%}
    {%- if minutes is none or flags.FULL_REFRESH -%}
        true
    {%- else -%}
        {{ column }} > now() - to_minutes({{ minutes }}::bigint)
    {%- endif -%}
{%- endmacro %}
