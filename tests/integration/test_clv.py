"""Customer lifetime models through the real pipeline: orders written to the landing log as a
collector would, loaded into Delta bronze, modelled by dbt, fitted by `lakepulse predict`'s
workflow, published to PostgreSQL.

The proof: customers drawn from a BG/NBD process with known parameters (the generator in
lakepulse.demo.history, which the demo's history uses too, is written from the paper,
independently of lakepulse.analytics.clv), and the fit recovers the
parameters within 10 %. Some purchase occasions are sent as two orders on the same day, and some
orders twice (a repeated confirmation page): counting orders rather than daily occasions, or
orders rather than first completions, biases the fit and fails the test.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import psycopg
import pytest

from lakepulse.core.settings import PROJECT_ROOT
from lakepulse.demo import history
from lakepulse.operations.predict import fit_predictions
from lakepulse.warehouse.publish import ServedMart, create_tenant_login, publish
from orchestration.definitions import build_definitions

pytestmark = pytest.mark.integration

START = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 730  # observed days: START .. START + 729 days
JOIN_DAYS = 365  # first purchases spread over the first year
TRUTH = history.TRUTH
CUSTOMERS = 20_000
SEED = 20051


def land_customers(settings, tenant: str, customers: list[dict], seed: int) -> dict:
    """The customers' orders (:func:`lakepulse.demo.history.customer_messages`) and an event on
    the last observed day (the tenant's clock) as one landing file. Returns what the test
    expects per customer, counted from the generator: (x, t_x, T, monetary value)."""
    messages, expected = history.customer_messages(customers, seed, START, DAYS)
    messages.append(history.clock_message(START + timedelta(days=DAYS - 1, hours=23, minutes=59)))
    history.land(settings, tenant, messages, delay=timedelta(seconds=1))
    return expected


def simulate_customers(n: int, seed: int, truth: dict = TRUTH) -> list[dict]:
    """Customers of a BG/NBD process (:func:`lakepulse.demo.history.simulate_customers`, written
    from the paper independently of lakepulse.analytics.clv) over DAYS, joining in the first
    JOIN_DAYS."""
    return history.simulate_customers(n, seed, truth, days=DAYS, join_days=JOIN_DAYS)


def p_alive(params: dict, x: int, t_x: float, age: float) -> float:
    """P(alive | x, t_x, T) of the BG/NBD (Fader, Hardie & Lee 2008 note, eq. 1)."""
    if x == 0:
        return 1.0
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    return 1.0 / (1.0 + (a / (b + x - 1)) * ((alpha + age) / (alpha + t_x)) ** (r + x))


SELECT = ("--select", "+int_customer_orders", "+int_session_clocks")
MARTS = ("--select", "mart_clv_model", "mart_customer_predictions")


def test_fit_recovers_known_bgnbd_parameters_through_the_pipeline(settings, workspace):
    customers = simulate_customers(CUSTOMERS, SEED)
    expected = land_customers(settings, "synth", customers, SEED)
    workspace.ingest()
    workspace.build(*SELECT)

    results = fit_predictions(settings)
    assert [r.tenant_id for r in results] == ["synth"]
    result = results[0]
    assert result.error is None and result.observation_end == date(2025, 12, 30)
    fit = result.model.fit
    assert fit.customers == CUSTOMERS
    assert fit.repeat_customers == sum(1 for x, *_ in expected.values() if x > 0)
    recovered = {k: getattr(fit, k) for k in TRUTH}
    for name, truth in TRUTH.items():
        assert abs(recovered[name] / truth - 1) < 0.10, (name, recovered, TRUTH)

    # The holdout: actual occasions in the last 30 days, counted from the generator, of the
    # customers who had bought before them; the calibration fit predicts them in aggregate.
    holdout = result.model.holdout
    cutoff = DAYS - 1 - 30
    actual = 0
    before = 0
    for customer in customers:
        days = customer["days"]
        if days[0] <= cutoff:
            before += 1
            actual += sum(1 for d in days if d > cutoff)
    assert holdout.customers == before and holdout.actual_orders == actual
    assert 0.9 < holdout.ratio < 1.1, holdout

    # The marts: the fit as recorded, and every customer's figures from it.
    workspace.build(*MARTS)
    [(customers_seen, r, alpha, holdout_actual)] = workspace.sql(
        "select customers, r, alpha, holdout_actual_orders from marts.mart_clv_model "
        "where tenant_id = 'synth'"
    )
    assert (customers_seen, holdout_actual) == (CUSTOMERS, actual)
    assert (r, alpha) == pytest.approx((fit.r, fit.alpha))
    rows = workspace.sql(
        "select user_key, frequency, recency_days, age_days, monetary_value, p_alive, "
        "churn_risk from marts.mart_customer_predictions where tenant_id = 'synth' "
        "order by user_key"
    )
    assert len(rows) == CUSTOMERS
    params = {"r": fit.r, "alpha": fit.alpha, "a": fit.a, "b": fit.b}
    for user, x, t_x, age, monetary, alive, risk in rows[:500]:
        assert (x, t_x, age) == expected[user][:3]
        assert monetary == pytest.approx(expected[user][3], abs=1e-6)
        assert alive == pytest.approx(p_alive(params, x, t_x, age), rel=1e-9)
        assert (risk == "one_time") == (x == 0)


def test_predict_cli_and_only_customer_level_logins_read_the_predictions(
    settings, workspace, postgres_url
):
    small = {"r": 2.0, "alpha": 50.0, "a": 0.8, "b": 3.0}
    counts = {"acme": 300, "globex": 200}
    one_time = {}
    for seed, (tenant, n) in enumerate(counts.items()):
        sent = land_customers(settings, tenant, simulate_customers(n, seed, small), seed)
        one_time[tenant] = sum(1 for x, *_ in sent.values() if x == 0)
    workspace.ingest()
    workspace.build(*SELECT, "+mart_buyer_signals")
    # No fit yet: the buyer signals have no lifetime figures.
    assert workspace.sql(
        "select count(*) >= 500, count(p_alive), count(clv_90d) from marts.mart_buyer_signals"
    ) == [(True, 0, 0)]

    # The daily Dagster job (its schedule runs it at 02:45 UTC), then the CLI: two fits each.
    defs = build_definitions(settings)
    assert defs.resolve_schedule_def("daily_predictions").job_name == "predict"
    with dg.instance_for_test() as instance:
        run = defs.resolve_job_def("predict").execute_in_process(instance=instance)
    assert run.success
    [materialization] = run.asset_materializations_for_node("predictions__clv_fits")
    metadata = materialization.metadata
    assert metadata["tenants_fitted"].value == 2
    assert metadata["acme"].value["customers"] == 300 and metadata["acme"].value["holdout"]

    result = subprocess.run(
        [sys.executable, "-m", "lakepulse.cli", "predict"],
        env=settings.process_env(),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for tenant, n in counts.items():
        assert f"{tenant}: {n} customers" in out
    assert out.count("BG/NBD      r=") == 2 and out.count("holdout     last 30 days") == 2
    assert "2 of 2 tenants fitted" in out and "lakepulse publish" in out

    workspace.build(*MARTS, "mart_buyer_signals", "mart_customer_segments")
    # The buyer signals shown to a merchant carry the same figures as BI's predictions: the
    # incremental build rewrote the rows the fit moved, though no event changed.
    assert workspace.sql(
        "select count(*), count(s.p_alive) from marts.mart_customer_predictions p "
        "left join marts.mart_buyer_signals s using (tenant_id, user_key) "
        "where s.p_alive is not distinct from p.p_alive "
        "and s.churn_risk is not distinct from p.churn_risk "
        "and s.clv_90d is not distinct from p.clv_90d"
    ) == [(500, 500)]
    # In aggregate (every BI login reads it): each tenant's customers, the one-time ones as
    # the generator made them, on the tenant's last day.
    segments = workspace.sql(
        "select tenant_id, sum(customers), sum(customers) filter (churn_risk = 'one_time'), "
        "count(distinct observation_end) from marts.mart_customer_segments group by 1 order by 1"
    )
    assert segments == [(t, counts[t], one_time[t], 1) for t in sorted(counts)]
    # Each tenant's customers are predicted from its latest fit.
    assert workspace.sql(
        "select distinct tenant_id, fitted_at from marts.mart_customer_predictions order by 1"
    ) == workspace.sql(
        "select tenant_id, max(fitted_at) from marts.mart_clv_model group by 1 order by 1"
    )
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("drop database if exists clv_test")
        conn.execute("create database clv_test")
    url = with_db(postgres_url, "clv_test")
    published = publish(settings, url, PREDICTION_MARTS)
    assert published.rows == {"mart_clv_model": 4, "mart_customer_predictions": 500}

    def login(tenant: str, customer_level: bool) -> psycopg.Connection:
        role, password = create_tenant_login(url, tenant, customer_level=customer_level)
        return psycopg.connect(
            with_db(url, "clv_test", user=role), password=password, autocommit=True
        )

    with login("acme", customer_level=False) as conn:
        assert conn.execute("select tenant_id, customers from marts.mart_clv_model").fetchall() == [
            ("acme", 300),
            ("acme", 300),
        ]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select count(*) from marts.mart_customer_predictions")
    with login("globex", customer_level=True) as conn:
        assert conn.execute(
            "select tenant_id, count(*) from marts.mart_customer_predictions group by 1"
        ).fetchall() == [("globex", 200)]


def with_db(url: str, dbname: str, user: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = f"{user}@{parts.netloc.split('@', 1)[-1]}" if user else parts.netloc
    return urlunsplit((parts.scheme, netloc, f"/{dbname}", parts.query, parts.fragment))


PREDICTION_MARTS = {
    "mart_clv_model": ServedMart("mart_clv_model", ("tenant_id", "fitted_at")),
    "mart_customer_predictions": ServedMart(
        "mart_customer_predictions",
        ("tenant_id", "churn_risk"),
        ("tenant_id", "user_key"),
        customer_level=True,
    ),
}
