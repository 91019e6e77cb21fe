-- A custom trigger (kind `custom`, `model: big_cart` in triggers.yml): an open cart worth at
-- least 500, as soon as it is. Any model under models/triggers/ returning these columns is a
-- trigger: tenant_id, user_id (null for a tenant-level condition), occurrence_key,
-- occurred_at and payload (JSON text); a `trigger` column is optional (rows of other names
-- are ignored). Analytics engineers write SQL; lakepulse fires each occurrence once.
--
-- Like the built-in kinds, it looks back one day on the tenant's clock (int_session_clocks): a
-- trigger added to a shop with months of history fires for the carts of now, not for every big
-- cart ever left open (at ten million events of history, 13,000 stale alerts at once).

with

carts as (

    select * from {{ ref('int_buyer_signals') }}
    where cart_opened_at is not null

),

clocks as (

    select * from {{ ref('int_session_clocks') }}

),

final as (

    select
        carts.tenant_id,
        carts.user_key as user_id,
        strftime(carts.cart_opened_at, '%Y-%m-%dT%H:%M:%S.%f') as occurrence_key,
        carts.cart_last_touched_at as occurred_at,
        cast(
            json_object('cart_value', carts.cart_value, 'cart_products', carts.cart_products)
            as varchar
        ) as payload
    from carts
    inner join clocks
        on carts.tenant_id = clocks.tenant_id
    where carts.cart_value >= 500
        and carts.cart_last_touched_at >= clocks.judged_at - interval 1 day

)

select * from final
