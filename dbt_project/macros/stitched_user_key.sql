{#-
    The person an event belongs to, the same everywhere: the user_id it carries, else the user
    its anonymous id identified as (`identity_user_id`, from `int_identity_map`), else the
    device.
-#}
{% macro stitched_user_key(user_id, anonymous_id, identity_user_id) -%}
    coalesce({{ user_id }}, {{ identity_user_id }}, {{ anonymous_id }})
{%- endmacro %}
