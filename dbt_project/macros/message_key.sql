{#-
    A 64-bit key of an event's (tenant, message): half of the MD5 of the two (the bits that
    `md5_number_lower` returns, taken by a shift: `md5_number_lower` goes through a bit string
    and costs 2.6 times as much), so it stays the same across DuckDB releases, unlike `hash`.
    stg_events stores it beside the message to find the copies it holds by reading 8 bytes a
    row instead of every message id. A key says only "maybe the same message": two messages
    can share one, so a match is confirmed on the ids themselves.
-#}
{% macro message_key(tenant_id, message_id) -%}
    cast(md5_number({{ tenant_id }} || chr(31) || {{ message_id }}) >> 64 as ubigint)
{%- endmacro %}
