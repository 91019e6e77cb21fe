{#- The parts of a page URL that stand in for context fields an SDK left out (documented in
    _macros.yml). Each takes the URL as a SQL expression, so staging applies them to the bronze
    rows already stored as well as to new ones. -#}

{% macro url_query_parameter(url, parameter) -%}
    nullif(url_decode(replace(regexp_extract({{ url }}, '(?i)[?&]{{ parameter }}=([^&#]*)', 1), '+', ' ')), '')
{%- endmacro %}

{% macro url_path(url) -%}
    case
        when {{ url }} is null then null
        when regexp_matches({{ url }}, '^[A-Za-z][A-Za-z0-9+.-]*://')
            then coalesce(nullif(regexp_extract({{ url }}, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)', 1), ''), '/')
        when starts_with({{ url }}, '/') then regexp_extract({{ url }}, '^([^?#]*)', 1)
    end
{%- endmacro %}

{% macro context_or_url(context_value, url_value) -%}
    coalesce(nullif({{ context_value }}, ''), {{ url_value }})
{%- endmacro %}
