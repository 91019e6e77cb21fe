{#- Host of a URL, lower-cased, without a leading `www.`; null for an empty or relative URL. -#}
{% macro url_domain(url) -%}
    nullif(regexp_replace(lower(regexp_extract({{ url }}, '^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#]+)', 1)), '^www\.', ''), '')
{%- endmacro %}
