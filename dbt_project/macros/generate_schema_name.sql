{#- Use the configured schema name as is (`staging`, `marts`) instead of dbt's
    `<target schema>_<custom schema>`, so BI and `lakepulse sql` see stable names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name if custom_schema_name else target.schema }}
{%- endmacro %}
