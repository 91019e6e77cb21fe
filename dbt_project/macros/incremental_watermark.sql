{#-
    The load time up to which this incremental model has processed stg_events, less
    `var('incremental_lookback_minutes')`: rows loaded after it are new to the model. Each model
    keeps its own watermark (`column`, the max over its rows), so a run that fails half way is
    simply caught up by the next one. Load time, not event time: an event that arrives hours
    late is still new when it is loaded, whatever its timestamp.
-#}
{% macro incremental_watermark(column="last_loaded_at") -%}
    (
        select
            coalesce(max({{ column }}), '-infinity'::timestamptz)
            - to_minutes({{ var("incremental_lookback_minutes") }}::bigint)
        from {{ this }}
    )
{%- endmacro %}
