"""Dashboard query latency on published marts, as a tenant's BI login over PostgreSQL, against
the same queries on the DuckDB read replica in the same run.

    python -m benchmarks.bench_serving --events 1000000
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200)
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
            bi.close()
            replica.close()


if __name__ == "__main__":
    main()
