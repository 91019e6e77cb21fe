-- The accuracy of every purchase-propensity fit on its holdout day: AUC and the calibration
-- curve, one row per tenant, fit and bin. Method: lakepulse/analytics/propensity.py.

select
    tenant_id,
    model,
    fitted_at,
    observed_until,
    train_sessions,
    holdout_sessions,
    holdout_orders,
    auc,
    base_rate,
    bin,
    predicted_low,
    predicted_high,
    predicted_rate,
    observed_rate,
    sessions,
    fit_seconds
from {{ source('predictions', 'propensity_fits') }}
