{#-
    One row per funnel in the seeds with a hash of its definition (order mode, window, steps).
    Rows of int_funnel_progress and mart_funnel_conversion carry the version they were computed
    with, so an incremental run sees an added, edited or removed funnel and recomputes it.
-#}
{% macro funnel_versions() -%}
    select
        funnels.funnel_id,
        md5(concat_ws(
            '|',
            funnels.order_mode,
            funnels.conversion_window_minutes,
            string_agg(steps.step_number || ':' || steps.event_name, ',' order by steps.step_number)
        )) as funnel_version
    from {{ ref('funnels') }} as funnels
    inner join {{ ref('funnel_steps') }} as steps
        on funnels.funnel_id = steps.funnel_id
    group by funnels.funnel_id, funnels.order_mode, funnels.conversion_window_minutes
{%- endmacro %}

{#- Whether `relation`'s funnel versions differ from the seeds' (run time only). -#}
{% macro funnel_definitions_changed(relation) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set query -%}
        with
        defined as ({{ funnel_versions() }}),
        kept as (select distinct funnel_id, funnel_version from {{ relation }}),
        differences as (
            (select funnel_id, funnel_version from defined except select * from kept)
            union all
            (select * from kept except select funnel_id, funnel_version from defined)
        )
        select count(*) > 0 from differences
    {%- endset -%}
    {{ return(run_query(query).columns[0].values()[0]) }}
{%- endmacro %}
