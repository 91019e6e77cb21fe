{#-
    The clock-relative figures of a buyer's signals at `clock`: sessions started in the 7 and
    30 days up to it, and whole days from the last order to it. `signals` is the relation (or
    CTE) with `recent_session_starts` and `last_order_at`; `suffix` ends each column's name,
    so the figures at two clocks can sit side by side.
-#}
{% macro buyer_clock_figures(signals, clock, suffix='') -%}
    cast(len(list_filter(
        {{ signals }}.recent_session_starts,
        lambda started: started > {{ clock }} - interval 7 day
    )) as bigint) as sessions_last_7d{{ suffix }},
    cast(len(list_filter(
        {{ signals }}.recent_session_starts,
        lambda started: started > {{ clock }} - interval 30 day
    )) as bigint) as sessions_last_30d{{ suffix }},
    cast(date_diff('day', {{ signals }}.last_order_at, {{ clock }}) as bigint)
        as days_since_last_order{{ suffix }}
{%- endmacro %}
