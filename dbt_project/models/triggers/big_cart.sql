-- A custom trigger (kind `custom`, `model: big_cart` in triggers.yml): an open cart worth at
-- least 500, as soon as it is. Any model under models/triggers/ returning these columns is a
-- trigger: tenant_id, user_id (null for a tenant-level condition), occurrence_key,
-- occurred_at and payload (JSON text); a `trigger` column is optional (rows of other names
-- are ignored). Analytics engineers write SQL; lakepulse fires each occurrence once.

with

carts as (

    select * from {{ ref('int_buyer_signals') }}
    where cart_opened_at is not null

)

select
    tenant_id,
    user_key as user_id,
    strftime(cart_opened_at, '%Y-%m-%dT%H:%M:%S.%f') as occurrence_key,
    cart_last_touched_at as occurred_at,
    cast(json_object('cart_value', cart_value, 'cart_products', cart_products) as varchar) as payload
from carts
where cart_value >= 500
