"""Per tenant and customer: the latest customer-lifetime fit of the tenant (mart_clv_model)
applied to the customer's purchase history as of the tenant's latest event day, so a new
order moves the customer's figures in the next build while the parameters change only with
the next fit. The model only materializes what `lakepulse.analytics.clv.predict_tenants`
returns (the method, unit-tested in the library)."""

from __future__ import annotations

import pyarrow as pa

from lakepulse.analytics import clv

SCHEMA = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("user_key", pa.string()),
        ("fitted_at", pa.timestamp("us", tz="UTC")),
        ("observation_end", pa.date32()),
        ("first_order_date", pa.date32()),
        ("last_order_date", pa.date32()),
        ("frequency", pa.int64()),
        ("recency_days", pa.float64()),
        ("age_days", pa.float64()),
        ("monetary_value", pa.float64()),
        ("p_alive", pa.float64()),
        ("expected_orders_90d", pa.float64()),
        ("p_order_90d", pa.float64()),
        ("expected_order_value", pa.float64()),
        ("clv_90d", pa.float64()),
        ("churn_risk", pa.string()),
        ("predicted_next_order_date", pa.date32()),
    ]
)


def model(dbt, session):
    dbt.config(materialized="table")
    orders = dbt.ref("int_customer_orders").df()
    clocks = (
        dbt.ref("int_session_clocks")
        .project("tenant_id, cast(timezone('UTC', judged_at) as date) as observation_end")
        .df()
    )
    fits = dbt.ref("mart_clv_model").df()
    predictions = clv.predict_tenants(orders, clocks, fits)
    for column in (
        "observation_end",
        "first_order_date",
        "last_order_date",
        "predicted_next_order_date",
    ):
        predictions[column] = (
            predictions[column].dt.date if len(predictions) else predictions[column]
        )
    return pa.Table.from_pandas(predictions, schema=SCHEMA, preserve_index=False)
