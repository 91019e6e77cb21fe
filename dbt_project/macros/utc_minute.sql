{#-
    The minute a timestamptz falls in, as `date_trunc('minute', timestamp)` gives it, computed
    on its microseconds since the epoch (floored, so times before 1970 round down too).
    `date_trunc` on a timestamptz goes through the calendar of the session's time zone, about
    ten times the cost of this arithmetic; the minute-grain models truncate every event they
    read. A minute is the same in every time zone whose offset is whole minutes, which is
    every zone in use since 1972.
-#}
{% macro utc_minute(timestamp) -%}
    make_timestamptz(
        epoch_us({{ timestamp }})
        - ((epoch_us({{ timestamp }}) % 60000000 + 60000000) % 60000000)
    )
{%- endmacro %}
