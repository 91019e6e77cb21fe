"""The demo's history (lakepulse/demo/history.py) on an empty data directory, through the real
pipeline (landing log, loader, dbt), then `lakepulse predict`: every model is fitted, and its
accuracy is where the generators' known truth puts it. A history killed half-way is completed
on the next start, neither half nor doubled; a finished one is never landed again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ingestion.landing import LandingLog
from lakepulse.demo import history
from lakepulse.demo.history import HistorySizes, ensure_history, holdout_limit, tenant_messages
from lakepulse.demo.supervisor import DEMO_TENANTS
from lakepulse.operations.predict import campaign_accuracy
from tests.integration.test_cli import cli

pytestmark = pytest.mark.integration

TENANTS = sorted(DEMO_TENANTS)
NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
SIZES = HistorySizes(customers=1000, visits_per_day=600)


class Killed(Exception):
    pass


def test_demo_history_lands_once_and_predict_fits_every_model(settings, workspace, monkeypatch):
    # Killed after the first tenant's file landed: the plan is kept, nothing is marked done.
    real_land = history.land

    def land_then_die(settings_, tenant, *args, **kwargs):
        real_land(settings_, tenant, *args, **kwargs)
        raise Killed(tenant)

    monkeypatch.setattr(history, "land", land_then_die)
    with pytest.raises(Killed):
        ensure_history(settings, TENANTS, sizes=SIZES, now=NOW)
    assert history.load_history(settings).stage == "planned"
    monkeypatch.setattr(history, "land", real_land)

    # The next start lands it all again (the same events) and goes on.
    report = ensure_history(settings, TENANTS, sizes=SIZES, now=NOW)
    assert report.landed and report.history.stage == "done"
    planned = report.history
    # Neither half nor doubled: the modelled events are exactly the history's, once each.
    for tenant in TENANTS:
        messages, _ = tenant_messages(planned, tenant)
        assert workspace.warehouse_sql(
            "select count(*), count(distinct message_id), max(event_at) "
            f"from staging.stg_events where tenant_id = '{tenant}'"
        ) == [(len(messages), len(messages), pytest.approx(NOW, abs=timedelta(hours=1)))]

    # Customer lifetime: every tenant fitted, its holdout right in aggregate, and the mean
    # purchase rate and dropout near the generator's (the simulated visitors' orders, ten days
    # of one-time customers, pull the rate down a little).
    truth = history.TRUTH
    assert [r.tenant_id for r in report.lifetime if r.error is None] == TENANTS
    for result in report.lifetime:
        fit, holdout = result.model.fit, result.model.holdout
        assert result.observation_end == NOW.date()
        assert 0.8 < holdout.ratio < 1.25, (result.tenant_id, holdout)
        rate = fit.r / fit.alpha
        assert abs(rate / (truth["r"] / truth["alpha"]) - 1) < 0.3, (result.tenant_id, fit)
        dropout = fit.a / (fit.a + fit.b)
        assert abs(dropout / (truth["a"] / (truth["a"] + truth["b"])) - 1) < 0.3, fit

    # Purchase propensity: within 0.04 of the simulator's true probabilities on the same
    # held-out day (a customer's or campaign's session counts as the sure order it was), and
    # not above them beyond noise (which would be a leak).
    truths = {t: tenant_messages(planned, t)[1] for t in TENANTS}
    limits = holdout_limit(settings, truths, default=1.0)
    assert [r.tenant_id for r in report.propensity if r.error is None] == TENANTS
    for result in report.propensity:
        limit, sessions = limits[result.tenant_id]
        assert result.accuracy.holdout_sessions == sessions
        assert -0.02 < limit - result.accuracy.auc < 0.04, (result.tenant_id, limit, result)

    # Campaign forecasts: the ended campaigns forecast while they ran, 80 % intervals.
    for accuracy in campaign_accuracy(settings):
        assert accuracy.backtested >= 10 and accuracy.running == 2, accuracy
        assert 0.6 <= accuracy.coverage <= 1.0 and accuracy.median_error < 0.4, accuracy

    # Again: nothing lands, loads or fits.
    files = sorted(f.name for f in LandingLog(settings.landing_dir).files())
    again = ensure_history(settings, TENANTS, sizes=SIZES)
    assert not again.landed and "already landed" in again.reason
    assert sorted(f.name for f in LandingLog(settings.landing_dir).files()) == files

    # `lakepulse predict` on it: all three models, with their accuracy.
    printed = cli(settings, "predict")
    assert printed.returncode == 0, printed.stderr
    out = printed.stdout
    assert "2 of 2 tenants fitted and recorded; 2 of 2 propensity models" in out, out
    assert out.count("holdout     last 30 days") == 2 and out.count(": AUC 0.") == 2, out
    assert out.count("inside the interval forecast while they ran") == 2, out
    assert "not fitted" not in out and "What to do" not in out, out
