{#-
    Generic model-level test: no row has a null in any of `columns`. For models that cannot
    carry `not_null` constraints (Python models: dbt enforces no contract on them), one node
    for all their key columns instead of a `not_null` test per column.
-#}
{% test lakepulse_not_null_columns(model, columns) %}

select *
from {{ model }}
where
{%- for column in columns %}
    {{ 'or ' if not loop.first }}{{ column }} is null
{%- endfor %}

{% endtest %}
