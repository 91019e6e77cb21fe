{#-
    Generic test: the combination of `columns` is unique (dbt_utils is not installable offline).

    `recent` (optional) names the table's load-time column (`loaded_at`, `last_loaded_at`) on
    incremental models. The minute's build then checks the keys of the rows loaded in the last
    `var('data_tests_recent_minutes')` against the whole table: a duplicate always involves a
    row written after the first, so each build catches the ones its loads could create,
    without grouping the whole history every minute. A full refresh (the replay job,
    `lakepulse build --full-refresh`) and `data_tests_recent_minutes: null` check everything.
-#}
{% test lakepulse_unique_combination(model, columns, recent=none) %}
{%- set keys = columns | join(', ') %}

{%- set window = (recent_loads(recent) | trim) if recent else 'true' %}

{%- if window != 'true' %}
with recent_keys as (

    select distinct {{ keys }}
    from {{ model }}
    where {{ window }}

)

select {{ keys }}, count(*) as n_rows
from {{ model }}
semi join recent_keys using ({{ keys }})
group by {{ keys }}
having count(*) > 1
{%- else %}
select {{ keys }}, count(*) as n_rows
from {{ model }}
group by {{ keys }}
having count(*) > 1
{%- endif %}

{% endtest %}
