{#-
    The load time up to which this incremental model has processed its input, less
    `var('incremental_lookback_minutes')`: rows loaded after it are new to the model. Each model
    keeps its own watermark (`column`, the max over its rows), so a run that fails half way is
    simply caught up by the next one. Load time, not event time: an event that arrives hours
    late is still new when it is loaded, whatever its timestamp.

    Rendered as a literal (queried when the model runs), so DuckDB can skip row groups by
    their min/max statistics instead of scanning the history.
-#}
{% macro incremental_watermark(column="last_loaded_at") -%}
    {%- set query -%}
        select cast(
            coalesce(max({{ column }}), '-infinity'::timestamptz)
                - to_minutes({{ var("incremental_lookback_minutes") }}::bigint)
            as varchar
        )
        from {{ this }}
    {%- endset -%}
    {{ query_literal(query, "timestamptz") }}
{%- endmacro %}

{#- The single value a query returns, as a typed SQL literal (null when it returns none). -#}
{% macro query_literal(query, type) -%}
    {%- if execute -%}
        {%- set value = run_query(query).columns[0].values()[0] -%}
        {%- if value is none -%}null::{{ type }}{%- else -%}'{{ value }}'::{{ type }}{%- endif -%}
    {%- else -%}
        null::{{ type }}
    {%- endif -%}
{%- endmacro %}
