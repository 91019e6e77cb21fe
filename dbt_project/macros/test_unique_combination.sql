{#- Generic test: the combination of `columns` is unique (dbt_utils is not installable offline). -#}
{% test lakepulse_unique_combination(model, columns) %}

select {{ columns | join(', ') }}, count(*) as n_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
