{#-
    The person an event belongs to, the same everywhere: the user_id it carries, else the user
    its anonymous id identified as (`int_identity_map`, joined as `identity`), else the device.
-#}
{% macro stitched_user_key(user_id, anonymous_id) -%}
    coalesce({{ user_id }}, identity.user_id, {{ anonymous_id }})
{%- endmacro %}
