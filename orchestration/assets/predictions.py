"""The `predictions` group: each tenant's customer-lifetime fit (BG/NBD + Gamma-Gamma) and
purchase-propensity model, daily by the `daily_predictions` schedule, the same workflows as
`lakepulse predict`. The dbt models mart_clv_model, mart_customer_predictions,
mart_model_accuracy and mart_visitor_propensity read them downstream (sources
`predictions.clv_fits` and `predictions.propensity_fits`), in the next minute's build. The
fits are imported where the assets run: the code server loads these definitions and must not
import pandas, numpy and scipy with them."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from orchestration.resources import LakepulseResource

OWNER = "team:analytics-engineering"


@asset(
    key=AssetKey(["predictions", "clv_fits"]),
    deps=[AssetKey(["int_customer_orders"]), AssetKey(["int_tenant_clocks"])],
    group_name="predictions",
    owners=[OWNER],
    kinds={"delta", "python"},
    description="Fits every tenant's customer lifetime models (BG/NBD + Gamma-Gamma, maximum "
    "likelihood, purchase occasions per day) and appends one row per tenant to "
    "lake/predictions/clv_fits, with the holdout accuracy of a fit made without the last 30 "
    "days. Metadata: each tenant's parameters and accuracy, or why it was not fitted.",
)
def clv_fits(context: AssetExecutionContext, lakepulse: LakepulseResource) -> MaterializeResult:
    from lakepulse.operations.predict import NothingToFit, fit_predictions

    try:
        results = fit_predictions(lakepulse.settings)
    except NothingToFit as err:
        context.log.warning(str(err))
        return MaterializeResult(metadata={"tenants_fitted": 0, "note": str(err)})
    metadata: dict = {"tenants_fitted": sum(1 for r in results if r.model is not None)}
    for result in results:
        if result.model is None:
            context.log.warning(f"{result.tenant_id} not fitted: {result.error}")
            metadata[result.tenant_id] = MetadataValue.text(f"not fitted: {result.error}")
        else:
            holdout = result.model.holdout
            metadata[result.tenant_id] = MetadataValue.json(
                {
                    "observation_end": str(result.observation_end),
                    **result.model.fit.as_dict(),
                    "holdout": holdout.as_dict() if holdout else None,
                    "seconds": result.seconds,
                }
            )
    return MaterializeResult(metadata=metadata)


@asset(
    key=AssetKey(["predictions", "propensity_fits"]),
    deps=[AssetKey(["int_session_features"]), AssetKey(["int_customer_orders"])],
    group_name="predictions",
    owners=[OWNER],
    kinds={"delta", "scikitlearn"},
    description="Trains every tenant's purchase-propensity model (an order within 24 h of a "
    "session's start), measured on the last labelled day before it is retrained on all of them; "
    "appends the holdout AUC and calibration to lake/predictions/propensity_fits and keeps the "
    "model for mart_visitor_propensity. Metadata: each tenant's AUC, or why it has no model.",
)
def propensity_fits(
    context: AssetExecutionContext, lakepulse: LakepulseResource
) -> MaterializeResult:
    from lakepulse.operations.predict import NothingToFit, fit_propensity

    try:
        results = fit_propensity(lakepulse.settings)
    except NothingToFit as err:
        context.log.warning(str(err))
        return MaterializeResult(metadata={"tenants_fitted": 0, "note": str(err)})
    metadata: dict = {"tenants_fitted": sum(1 for r in results if r.accuracy is not None)}
    for result in results:
        if result.accuracy is None:
            context.log.warning(f"{result.tenant_id} not fitted: {result.error}")
            metadata[result.tenant_id] = MetadataValue.text(f"not fitted: {result.error}")
        else:
            metadata[result.tenant_id] = MetadataValue.json(
                {
                    "auc": result.accuracy.auc,
                    "holdout_sessions": result.accuracy.holdout_sessions,
                    "holdout_orders": result.accuracy.holdout_orders,
                    "train_sessions": result.accuracy.train_sessions,
                    "calibration": result.accuracy.calibration,
                    "seconds": result.seconds,
                }
            )
    return MaterializeResult(metadata=metadata)
