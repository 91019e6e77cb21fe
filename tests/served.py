"""The marts served to PostgreSQL as they were when publish.py held them as constants (issue
#28 moved them into each mart's YAML ``meta: publish:``): what the tests expect the YAML to
declare, written out here rather than read from the code under test."""

from __future__ import annotations

MARTS: dict[str, tuple[str, ...]] = {
    "fct_sessions": ("tenant_id", "session_date"),
    "dim_users": ("tenant_id", "first_seen_date"),
    "mart_funnel_conversion": ("tenant_id", "funnel_id", "entry_date"),
    "mart_conversion_windows": ("tenant_id", "window_minutes", "window_end_at"),
    "mart_revenue_velocity": ("tenant_id", "campaign", "minute_at"),
    "mart_cohort_retention": ("tenant_id", "cohort_grain", "cohort_start"),
    "mart_campaign_kpis": ("tenant_id", "campaign"),
    "mart_event_volume": ("tenant_id", "event_minute"),
    "mart_experiment_results": ("tenant_id", "experiment_id"),
    "fct_experiment_snapshots": ("tenant_id", "experiment_id", "snapshot_at"),
    "mart_anomaly_alerts": ("tenant_id", "minute_at"),
    "mart_buyer_signals": ("tenant_id", "user_key"),
    "fct_trigger_firings": ("tenant_id", "fired_date"),
    "mart_rejected_events": ("tenant_id", "rejected_minute"),
    "fct_trigger_deliveries": ("tenant_id", "trigger", "fired_at"),
    "mart_trigger_impact": ("tenant_id", "trigger"),
    "mart_clv_model": ("tenant_id", "fitted_at"),
    "mart_customer_predictions": ("tenant_id", "churn_risk"),
    "mart_model_accuracy": ("tenant_id", "fitted_at"),
    "mart_visitor_propensity": ("tenant_id", "session_start_at"),
    "mart_campaign_forecast": ("tenant_id", "launched_at"),
    "mart_customer_segments": ("tenant_id", "observation_end"),
}
"""Every published mart and its index columns."""

DELTA_KEYS: dict[str, tuple[str, ...]] = {
    "fct_sessions": ("tenant_id", "session_id"),
    "dim_users": ("tenant_id", "user_key"),
    "mart_buyer_signals": ("tenant_id", "user_key"),
    "mart_revenue_velocity": ("tenant_id", "campaign", "minute_at"),
    "mart_customer_predictions": ("tenant_id", "user_key"),
    "mart_event_volume": ("tenant_id", "event_minute", "event_type", "event_name"),
    "mart_conversion_windows": ("tenant_id", "window_minutes", "window_end_at"),
    "fct_trigger_firings": ("firing_id",),
    "fct_trigger_deliveries": ("firing_id", "destination"),
}
"""Marts published as a delta, by their unique key."""

CUSTOMER_LEVEL_MARTS: set[str] = {
    "dim_users",
    "fct_sessions",
    "fct_trigger_deliveries",
    "fct_trigger_firings",
    "mart_buyer_signals",
    "mart_customer_predictions",
    "mart_visitor_propensity",
}
"""Marts with a row per user or session: customer-level logins only."""
