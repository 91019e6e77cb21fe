-- Kind `abandoned_cart`: a user's cart opens at their first `Product Added` after their last
-- `Order Completed`; it is abandoned once `after_minutes` pass after its last cart event
-- (Product Added, Cart Viewed, Checkout Started) with no order, judged at the tenant's latest
-- event. One occurrence per cart (keyed by when it opened); a cart closed by an order is no
-- longer open, and a cart whose last event is older than `max_age_hours` is not a candidate
-- (no flood of reminders for old carts on the first deploy).

with

definitions as (

    {{ trigger_definitions('abandoned_cart', {'after_minutes': 'double', 'max_age_hours': 'double'}) }}

),

clocks as not materialized (

    select * from {{ ref('int_session_clocks') }}

),

open_carts as (

    select * from {{ ref('int_buyer_signals') }}
    where cart_opened_at is not null

),

final as (

    select
        definitions.trigger,
        open_carts.tenant_id,
        open_carts.user_key as user_id,
        strftime(open_carts.cart_opened_at, '%Y-%m-%dT%H:%M:%S.%f') as occurrence_key,
        open_carts.cart_last_touched_at + {{ minutes_interval('definitions.after_minutes') }}
            as occurred_at,
        cast(json_object(
            'user_id', open_carts.user_id,
            'cart_products', open_carts.cart_products,
            'cart_value', open_carts.cart_value,
            'cart_opened_at', open_carts.cart_opened_at,
            'cart_last_touched_at', open_carts.cart_last_touched_at
        ) as varchar) as payload
    from open_carts
    inner join clocks
        on open_carts.tenant_id = clocks.tenant_id
    inner join definitions
        on {{ trigger_applies('definitions', 'open_carts.tenant_id') }}
    where open_carts.cart_last_touched_at
            <= clocks.judged_at - {{ minutes_interval('definitions.after_minutes') }}
        and open_carts.cart_last_touched_at
            >= clocks.judged_at - {{ minutes_interval('definitions.max_age_hours * 60') }}

)

select * from final
