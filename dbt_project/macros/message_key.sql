{#-
    A 64-bit key of an event's (tenant, message): the lower half of the MD5 of the two, so it
    stays the same across DuckDB releases (unlike `hash`). stg_events stores it beside the
    message to find the copies it holds by reading 8 bytes a row instead of every message id.
    A key says only "maybe the same message": two messages can share one, so a match is
    confirmed on the ids themselves.
-#}
{% macro message_key(tenant_id, message_id) -%}
    md5_number_lower({{ tenant_id }} || chr(31) || {{ message_id }})
{%- endmacro %}
