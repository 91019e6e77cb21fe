-- The customer-lifetime predictions in aggregate, one row per tenant, day, churn-risk segment
-- and band of 90-day CLV: how many customers, their summed CLV and mean p_alive. No customer
-- appears in it, so every BI login reads it (the Predictions dashboard's CLV distribution and
-- churn-risk segments over time); mart_customer_predictions has the customers.
--
-- A day's rows are the predictions of the tenant's latest event day (observation_end); each
-- build replaces that day's rows and keeps the earlier days': the segments over time are a
-- history that cannot be recomputed from today's predictions, so a full refresh keeps it too
-- (`full_refresh: false`, like fct_experiment_snapshots).

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id', 'observation_end']}],
        full_refresh=false,
    )
}}

with

predictions as not materialized (

    select * from {{ ref('mart_customer_predictions') }}

),

banded as (

    select
        tenant_id,
        observation_end,
        fitted_at,
        churn_risk,
        case
            when clv_90d is null then 'unknown'
            when clv_90d < 10 then '0-10'
            when clv_90d < 25 then '10-25'
            when clv_90d < 50 then '25-50'
            when clv_90d < 100 then '50-100'
            when clv_90d < 250 then '100-250'
            when clv_90d < 500 then '250-500'
            when clv_90d < 1000 then '500-1000'
            else '1000+'
        end as clv_band,
        case
            when clv_90d is null then 9
            when clv_90d < 10 then 1
            when clv_90d < 25 then 2
            when clv_90d < 50 then 3
            when clv_90d < 100 then 4
            when clv_90d < 250 then 5
            when clv_90d < 500 then 6
            when clv_90d < 1000 then 7
            else 8
        end as clv_band_order,
        p_alive,
        clv_90d
    from predictions

)

select
    tenant_id,
    observation_end,
    max(fitted_at) as fitted_at,
    churn_risk,
    clv_band,
    clv_band_order,
    count(*) as customers,
    sum(clv_90d) as clv_90d_total,
    avg(p_alive) as mean_p_alive
from banded
group by tenant_id, observation_end, churn_risk, clv_band, clv_band_order
