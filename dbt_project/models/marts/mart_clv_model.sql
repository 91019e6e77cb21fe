-- Every customer-lifetime model fit, one row per tenant and fit (`lakepulse predict`, the daily
-- Dagster asset): the BG/NBD and Gamma-Gamma parameters by maximum likelihood and the holdout
-- accuracy of a fit made without the last 30 days. Method: lakepulse/analytics/clv.py.

select
    tenant_id,
    fitted_at,
    observation_end,
    customers,
    repeat_customers,
    r,
    alpha,
    a,
    b,
    p,
    q,
    gamma,
    log_likelihood,
    gg_log_likelihood,
    holdout_days,
    holdout_customers,
    holdout_predicted_orders,
    holdout_actual_orders,
    holdout_mae,
    holdout_ratio,
    fit_seconds
from {{ source('predictions', 'clv_fits') }}
