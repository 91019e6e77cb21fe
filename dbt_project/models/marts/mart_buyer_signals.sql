-- One row per tenant and (stitched) user: the buyer's signals for a merchant talking to them.
-- Built from int_buyer_signals (incremental by user), adding what depends on the clock,
-- taken as the tenant's latest event (its users' latest last_seen_at): sessions in the last 7
-- and 30 days and days since the last order. Rebuilt whole each run (a narrow scan of the
-- incremental table), so those figures are right for every user in every minute.

{{ config(materialized='table') }}

with

signals as (

    select * from {{ ref('int_buyer_signals') }}

),

clocks as (

    select tenant_id, max(last_seen_at) as signals_as_of
    from signals
    group by tenant_id

),

final as (

    select
        signals.tenant_id,
        signals.user_key,
        signals.user_id,
        signals.first_seen_at,
        signals.last_seen_at,
        cast(len(list_filter(
            signals.recent_session_starts,
            lambda started: started > clocks.signals_as_of - interval 7 day
        )) as bigint) as sessions_last_7d,
        cast(len(list_filter(
            signals.recent_session_starts,
            lambda started: started > clocks.signals_as_of - interval 30 day
        )) as bigint) as sessions_last_30d,
        signals.last_viewed_products,
        signals.cart_products,
        signals.cart_value,
        signals.cart_opened_at,
        signals.cart_last_touched_at,
        signals.orders,
        signals.lifetime_revenue,
        signals.last_order_at,
        cast(date_diff('day', signals.last_order_at, clocks.signals_as_of) as bigint)
            as days_since_last_order,
        signals.acquisition_channel,
        signals.acquisition_campaign,
        signals.last_partner_id,
        clocks.signals_as_of,
        cast(signals.first_seen_at as date) as first_seen_date,
        signals.last_loaded_at
    from signals
    inner join clocks
        on signals.tenant_id = clocks.tenant_id

)

select * from final
