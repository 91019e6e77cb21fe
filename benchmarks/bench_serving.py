"""Dashboard query latency on published marts, as a tenant's BI login over PostgreSQL, against
the same queries on the DuckDB read replica in the same run.

With ``--superset`` it also starts Superset (``lakepulse bi``) over the published marts, opens
every dashboard of tenant ``acme`` in headless Chromium, takes the SQL Superset actually sent
from its query log (``$LAKEPULSE_HOME/bi/queries.jsonl``) and replays each statement as that
tenant's login: the p95 of the dashboards' own queries, against the hand-written queries above
in the same run.

    python -m benchmarks.bench_serving --events 1000000 [--superset]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import psycopg

from benchmarks.bench_loader import make_landing
from ingestion.pipeline import run_ingest
from lakepulse.core.settings import Settings, disable_telemetry
from lakepulse.operations.rebuild import run_build
from lakepulse.warehouse.postgres import temporary_postgres
from lakepulse.warehouse.publish import create_tenant_login, publish

QUERIES = {
    "funnel, last 7 days": (
        "select step_number, step_event, sum(users) from marts.mart_funnel_conversion "
        "where tenant_id = 'acme' and funnel_id = 'purchase' and entry_date >= current_date - 7 "
        "group by 1, 2 order by 1"
    ),
    "daily retention grid": (
        "select cohort_start, period_number, user_retention from marts.mart_cohort_retention "
        "where tenant_id = 'acme' and cohort_grain = 'day' and cohort_start >= current_date - 30 "
        "order by 1, 2"
    ),
    "conversion, last hour": (
        "select window_end_at, visitors, orders, conversion_rate from marts.mart_conversion_windows "
        "where tenant_id = 'acme' and window_minutes = 5 "
        "and window_end_at > (select max(window_end_at) from marts.mart_conversion_windows "
        "where tenant_id = 'acme') - interval '1 hour' order by 1"
    ),
    "campaign KPIs": "select * from marts.mart_campaign_kpis where tenant_id = 'acme'",
    "experiment results": (
        "select variation_id, metric, users, relative_lift, always_valid_relative_ci_low, "
        "always_valid_relative_ci_high, always_valid_p_value, decision "
        "from marts.mart_experiment_results "
        "where tenant_id = 'acme' and experiment_id = 'checkout_button' order by 1, 2"
    ),
}


def timings(run, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def timings_all(run, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def dashboard_queries(settings: Settings, pg_url: str, role: str) -> list[str]:
    """Start Superset over ``pg_url``, open acme's dashboards in Chromium, return the distinct
    statements its query log shows it sent as ``role``."""
    import dataclasses
    import json
    import subprocess

    from playwright.sync_api import sync_playwright

    from ingestion.tenants import TenantRegistry
    from lakepulse.operations.bi import bi_home, prepare_superset, stop_group, superset_argv
    from tests.e2e.test_dagster_ui import CHROMIUM, CHROMIUM_ARGS, wait_for
    from tests.e2e.test_superset import DASHBOARDS, login, open_dashboard

    settings = dataclasses.replace(settings, pg_url=pg_url)
    registry = TenantRegistry(settings.tenants_file)
    if "acme" not in registry.tenants():
        registry.add("acme")
    bin_dir, env, access = prepare_superset(settings, print)
    with open(settings.home / "superset.log", "ab") as log:
        server = subprocess.Popen(
            superset_argv(bin_dir), env=env, stdout=log, stderr=log, start_new_session=True
        )
    try:
        wait_for(access.url + "/health", seconds=300)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            login(page, access.url, "acme", access.tenant_passwords["acme"])
            for slug, charts in DASHBOARDS.items():
                open_dashboard(page, access.url, f"{slug}-acme", charts, f"bench-{slug}")
            browser.close()
    finally:
        stop_group(server)
    logged = [json.loads(line) for line in (bi_home(settings) / "queries.jsonl").open()]
    return sorted({entry["sql"] for entry in logged if entry["user"] == role})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument(
        "--superset", action="store_true", help="Also time the SQL the dashboards send."
    )
    args = parser.parse_args()
    disable_telemetry()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"LAKEPULSE_HOME": str(Path(tmp) / "home")})
        settings.ensure_dirs()
        started = time.perf_counter()
        make_landing(settings, args.events)
        run_ingest(settings)
        run_build(settings, capture=True)
        print(f"built marts from {args.events} events in {time.perf_counter() - started:.0f} s")
        with temporary_postgres(Path(tmp) / "pg") as url:
            result = publish(settings, url)
            print(f"published {sum(result.rows.values())} rows in {result.seconds:.1f} s")
            role, password = create_tenant_login(url, "acme")
            bi = psycopg.connect(
                url.replace("postgres:@", f"{role}:{password}@").replace("postgres@", f"{role}@"),
                password=password,
            )
            replica = duckdb.connect(str(settings.replica_path), read_only=True)
            print(
                f"{'query':<24} {'PostgreSQL p50/p95 ms':>22} {'DuckDB replica p50/p95 ms':>27}  ratio p95"
            )
            worst = 0.0
            for name, query in QUERIES.items():
                pg50, pg95 = timings(lambda q=query: bi.execute(q).fetchall(), args.repeat)
                dk50, dk95 = timings(lambda q=query: replica.execute(q).fetchall(), args.repeat)
                worst = max(worst, pg95)
                print(
                    f"{name:<24} {pg50:10.2f} / {pg95:7.2f} {dk50:14.2f} / {dk95:7.2f}  {pg95 / dk95:8.2f}"
                )
            print(f"worst p95 over PostgreSQL: {worst:.2f} ms   target <= 20 ms")
            if args.superset:
                statements = dashboard_queries(settings, url, role)
                samples = []
                for statement in statements:
                    samples += timings_all(lambda q=statement: bi.execute(q).fetchall(), 20)
                samples.sort()
                p95 = samples[int(len(samples) * 0.95) - 1]
                print(
                    f"Superset dashboards: {len(statements)} distinct statements from its query "
                    f"log, p50 {statistics.median(samples):.2f} ms, p95 {p95:.2f} ms "
                    f"(ratio to the hand-written worst p95: {p95 / worst:.2f})"
                )
            bi.close()
            replica.close()


if __name__ == "__main__":
    main()
