{#-
    The running definitions of one trigger kind (source `triggers.definitions`), one row per
    trigger: its name, its tenants (null: all) and each parameter in `params` (a dict of
    parameter name to SQL type) as a typed column. Kind models join their candidates to it.
-#}
{% macro trigger_definitions(kind, params) -%}
    select
        trigger,
        tenants
        {%- for name, type in params.items() %},
        cast(json_extract_string(params, '$.{{ name }}') as {{ type }}) as {{ name }}
        {%- endfor %}
    from {{ source('triggers', 'definitions') }}
    where kind = '{{ kind }}'
{%- endmacro %}

{#- Whether a trigger's row of `definitions` applies to the tenant in `tenant_column`. -#}
{% macro trigger_applies(definitions, tenant_column) -%}
    ({{ definitions }}.tenants is null or list_contains({{ definitions }}.tenants, {{ tenant_column }}))
{%- endmacro %}

{#- `minutes` (a number or a column) as an interval. -#}
{% macro minutes_interval(minutes) -%}
    to_microseconds(cast(({{ minutes }}) * 60000000 as bigint))
{%- endmacro %}
