{#-
    Whether an event is a completion that counts: an `Order Completed` that is its order's
    first completion (`stg_orders`, joined as `first_completions` by `join_first_completions`),
    or that carries no order_id at all (each of those counts). A re-sent order (a reloaded
    confirmation page, a new messageId) then adds neither an order nor revenue a second time,
    in whichever minute or session it lands.
-#}
{% macro counted_completion(events, first_completions) -%}
    (
        {{ events }}.event_name = 'Order Completed'
        and (
            {{ events }}.order_id is null
            or {{ first_completions }}.message_id = {{ events }}.message_id
        )
    )
{%- endmacro %}

{#-
    The join that `counted_completion` reads: `orders` (stg_orders, one row per order's first
    completion) as `alias`, joined to every completion of the same order, first or not, so a
    model also sees when its order was last decided (`alias.loaded_at`: a later load of an
    earlier copy takes the order from the completion that held it); `since`: only first
    completions from then on.
-#}
{% macro join_first_completions(events, orders, alias, since=none) -%}
    left join {{ orders }} as {{ alias }}
        on {{ events }}.tenant_id = {{ alias }}.tenant_id
        -- the event's own condition inside the key: a condition on the left side alone makes
        -- DuckDB join every event to every order (a nested loop, hours at 10 M events)
        and (
            case when {{ events }}.event_name = 'Order Completed' then {{ events }}.order_id end
        ) = {{ alias }}.order_id
        {%- if since is not none %}
        and {{ alias }}.ordered_at >= {{ since }}
        {%- endif %}
{%- endmacro %}
