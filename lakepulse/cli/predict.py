"""``lakepulse predict``: fit every tenant's prediction models now."""

from __future__ import annotations

import sys

import click

from lakepulse.cli.app import current_settings, main, say_waiting_for_worker

TOO_LITTLE_HISTORY = """\
What to do about a tenant not fitted: these models learn from history it does not have yet
(minutes of traffic are one day of it; `make demo` lands a history on its first start,
unless LAKEPULSE_DEMO_HISTORY=0 or `lakepulse demo --no-history`).
  - Wait: keep the pipeline running; the daily job `predict` (02:45 UTC) fits the tenant once
    it has customers who came back over weeks (lifetime: 20 customers, more than one day) and
    200 sessions whose 24 hours are over, with at least 10 that ordered and 10 that did not
    (propensity).
  - Or load the past: send past orders and visits to the collector with their original
    timestamps, then `lakepulse ingest`, `lakepulse build` and `lakepulse predict` again.
  - Campaign forecasts need no fit: marts.mart_campaign_forecast forecasts a campaign once 8 of
    the tenant's campaigns have run their 7 days (its `note` column says what is missing).
See docs/predictions.md, "Too little history"."""


@main.command(
    help="Fit every tenant's prediction models now: customer lifetime (BG/NBD + Gamma-Gamma) "
    "and purchase propensity, each with its holdout accuracy."
)
@click.option("--tenant", "tenant_ids", multiple=True, help="Only this tenant (repeatable).")
def predict(tenant_ids: tuple[str, ...]) -> None:
    from lakepulse.operations.predict import (
        NothingToFit,
        PropensityResult,
        TenantResult,
        campaign_accuracy,
        fit_predictions,
        fit_propensity,
    )

    def show(result: TenantResult) -> None:
        if result.model is None:
            click.echo(f"  {result.tenant_id}: not fitted: {result.error}")
            return
        fit, holdout = result.model.fit, result.model.holdout
        click.echo(
            f"  {result.tenant_id}: {fit.customers} customers ({fit.repeat_customers} repeat) "
            f"to {result.observation_end}, fitted in {result.seconds:.1f} s"
        )
        click.echo(
            f"    BG/NBD      r={fit.r:.4g} alpha={fit.alpha:.4g} days a={fit.a:.4g} "
            f"b={fit.b:.4g} (log-likelihood {fit.log_likelihood:.1f})"
        )
        if fit.p is None:
            click.echo("    Gamma-Gamma not fitted (too few repeat customers)")
        else:
            click.echo(f"    Gamma-Gamma p={fit.p:.4g} q={fit.q:.4g} gamma={fit.gamma:.4g}")
        if holdout is None:
            click.echo("    holdout     none (too little history before the last 30 days)")
        else:
            ratio = "n/a" if holdout.ratio is None else f"{holdout.ratio:.3f}"
            click.echo(
                f"    holdout     last {holdout.days} days: predicted "
                f"{holdout.predicted_orders:.1f} vs actual {holdout.actual_orders} orders "
                f"(ratio {ratio}), MAE {holdout.mae:.3f} per customer"
            )

    def show_propensity(result: PropensityResult) -> None:
        if result.accuracy is None:
            click.echo(f"  {result.tenant_id}: not fitted: {result.error}")
            return
        accuracy = result.accuracy
        worst = max(abs(b["predicted_rate"] - b["observed_rate"]) for b in accuracy.calibration)
        click.echo(
            f"  {result.tenant_id}: AUC {accuracy.auc:.3f} on {accuracy.holdout_sessions} held-out "
            f"sessions ({accuracy.holdout_orders} ordered within 24 h), trained on "
            f"{accuracy.train_sessions}; calibration off by at most {worst:.3f} in a decile "
            f"({result.seconds:.1f} s)"
        )

    settings = current_settings()
    tenants = list(tenant_ids) or None
    # The fits read the warehouse the pipeline worker writes: between two of its cycles.
    from lakepulse.operations.rebuild import pipeline_turn

    with pipeline_turn(settings, on_wait=say_waiting_for_worker):
        try:
            click.echo("Customer lifetime (BG/NBD + Gamma-Gamma):")
            results = fit_predictions(settings, tenants, on_tenant=show)
        except NothingToFit as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)
        click.echo("Purchase propensity (an order within 24 h of a session's start):")
        try:
            propensities = fit_propensity(settings, tenants, on_tenant=show_propensity)
        except NothingToFit as err:
            click.echo(f"  not fitted: {err}")
            propensities = []
        click.echo("Campaign forecasts (day-7 revenue from the first 4 hours, 80 % interval):")
        try:
            campaigns = campaign_accuracy(settings, tenants)
        except NothingToFit as err:
            click.echo(f"  none yet: {err}")
            campaigns = []
        for campaign in campaigns:
            if not campaign.backtested:
                click.echo(f"  {campaign.tenant_id}: no forecast yet: {campaign.note}")
                continue
            click.echo(
                f"  {campaign.tenant_id}: {campaign.inside} of {campaign.backtested} ended campaigns "
                f"inside the interval forecast while they ran (coverage {campaign.coverage:.0%}), "
                f"median error {campaign.median_error:.0%}; {campaign.running} running campaigns "
                "forecast now"
            )
        if not results and not propensities:
            click.echo(
                "No orders yet: nothing to fit. Send traffic, then `lakepulse ingest` and build."
            )
            return
        fitted = sum(1 for r in results if r.model is not None)
        scored = sum(1 for r in propensities if r.accuracy is not None)
        forecast = sum(1 for c in campaigns if c.backtested)
        if fitted < len(results) or scored < len(propensities) or forecast < len(campaigns):
            click.echo(TOO_LITTLE_HISTORY)
        if not fitted and not scored:
            click.echo(
                f"0 of {len(results)} tenants fitted; 0 of {len(propensities)} propensity models."
            )
            return
        click.echo(
            f"{fitted} of {len(results)} tenants fitted and recorded; {scored} of "
            f"{len(propensities)} propensity models. Next: the next build applies them "
            "(`lakepulse build --select mart_clv_model mart_customer_predictions+ "
            "mart_model_accuracy mart_visitor_propensity`), then `lakepulse publish` serves them "
            "under marts.*; the running pipeline does both by itself."
        )
