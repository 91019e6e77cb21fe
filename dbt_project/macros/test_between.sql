{#-
    Generic test: every non-null value of the column (or of each of `columns`, as a model-level
    test) lies in [low, high]. One test for several columns is one dbt node in the minute's
    build instead of one per column: a node costs dbt more than a narrow scan does.
-#}
{% test lakepulse_between(model, low, high, column_name=none, columns=none) %}
{%- set checked = columns if columns else [column_name] %}

select *
from {{ model }}
where
{%- for column in checked %}
    {{ 'or ' if not loop.first }}{{ column }} < {{ low }} or {{ column }} > {{ high }}
{%- endfor %}

{% endtest %}
