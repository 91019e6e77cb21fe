{#-
    Where lakepulse keeps `relative_path` under its data directory (`LAKEPULSE_HOME`, the
    variable every lakepulse process reads; `../.lakepulse` beside the project by default):
    `lake_path('lake/raw/events')`. The one place dbt's SQL names the data directory.
-#}
{% macro lake_path(relative_path) -%}
    {{ env_var('LAKEPULSE_HOME', '../.lakepulse') }}/{{ relative_path }}
{%- endmacro %}
