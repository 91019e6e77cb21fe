"""``lakepulse``: what operators do by hand. Each command says what it did and what to do next."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lakepulse.core.settings import Settings


def _settings() -> Settings:
    return Settings.from_env()


@click.group(help="Real-time commerce analytics on a lakehouse. Data lives in $LAKEPULSE_HOME.")
def main() -> None:
    pass


@main.command(
    help="Start collector, traffic simulator, Dagster UI and Superset on localhost; Ctrl-C "
    "stops all."
)
@click.option("--rate", default=20.0, show_default=True, help="Simulated events per second.")
@click.option(
    "--bi/--no-bi", default=True, show_default=True, help="Start Superset with the dashboards."
)
@click.option(
    "--history/--no-history",
    default=None,
    help="On the first start (an empty data directory), land two years of past customers, "
    "ten days of visits and past campaigns first, so `lakepulse predict` has something to "
    "learn from. Default: on, unless LAKEPULSE_DEMO_HISTORY=0.",
)
def demo(rate: float, bi: bool, history: bool | None) -> None:
    from lakepulse.demo.history import history_wanted
    from lakepulse.demo.supervisor import run_demo

    with_history = history_wanted() if history is None else history
    sys.exit(run_demo(_settings(), rate, click.echo, with_bi=bi, with_history=with_history))


@main.command(
    help="Serve the Segment-compatible collector (LAKEPULSE_COLLECTOR_PORT, default 8088)."
)
@click.option("--workers", default=1, show_default=True, help="Processes sharing the port.")
def collect(workers: int) -> None:
    from ingestion.collector import serve

    settings = _settings()
    settings.ensure_dirs()
    click.echo(
        f"collector listening on {settings.collector_url} (POST /v1/batch); landing log: {settings.landing_dir}"
    )
    serve(settings, workers)


@main.command(help="Send seeded storefront traffic to a collector.")
@click.option("--rate", default=50.0, show_default=True, help="Events per second.")
@click.option("--events", "total", type=int, default=None, help="Stop after this many events.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--seed", default=42, show_default=True)
@click.option("--url", default=None, help="Collector base URL (default: the local collector).")
@click.option(
    "--write-key", "write_keys", multiple=True, help="TENANT=KEY; default: the demo tenants."
)
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option(
    "--bounce-share", default=0.1, show_default=True, help="Visits of one page view, then gone."
)
@click.option(
    "--browse-share",
    default=0.1,
    show_default=True,
    help="Visits browsing products for minutes without adding to the cart.",
)
def simulate(
    rate, total, duration, seed, url, write_keys, quiet, bounce_share, browse_share
) -> None:
    from lakepulse.demo.simulator import Sender, SimConfig, TrafficGenerator, run
    from lakepulse.demo.supervisor import DEMO_TENANTS

    settings = _settings()
    tenants = dict(pair.split("=", 1) for pair in write_keys) if write_keys else dict(DEMO_TENANTS)
    config = SimConfig(
        seed=seed, tenants=tenants, bounce_share=bounce_share, browse_share=browse_share
    )
    generator = TrafficGenerator(config)
    sender = Sender(url or settings.collector_url)
    progress = None
    if not quiet:
        from rich.progress import Progress

        bar = Progress(transient=False)
        task = bar.add_task(f"sending at {rate:g} events/s", total=total)
        bar.start()

        def progress(sent: int, accepted: int) -> None:
            bar.update(task, completed=sent, description=f"sent {sent}, accepted {accepted}")

    import httpx

    try:
        accepted = run(
            generator, sender, rate=rate, total=total, duration=duration, on_progress=progress
        )
    except KeyboardInterrupt:
        accepted = None
    except httpx.TransportError as err:
        click.echo(
            f"error: no collector answers at {sender.client.base_url} ({err}). Start one with "
            "`lakepulse collect` (or `make demo`), or pass --url.",
            err=True,
        )
        sys.exit(2)
    finally:
        if not quiet:
            bar.stop()
        sender.close()
    if accepted == 0:
        click.echo(
            "error: the collector accepted no events: it knows none of these write keys. The "
            "demo tenants' keys work only under `lakepulse demo`; register a tenant with "
            "`lakepulse tenants add NAME` and pass --write-key NAME=KEY.",
            err=True,
        )
        sys.exit(2)
    if accepted is not None:
        click.echo(f"{accepted} events accepted. Next: `lakepulse ingest` then `lakepulse build`.")


@main.command(help="Load new landing files into Delta bronze once (no Dagster needed).")
def ingest() -> None:
    from deltalake import DeltaTable

    from ingestion.pipeline import run_ingest

    settings = _settings()
    with click.progressbar(length=1, label="loading landing log into raw.events") as bar:
        info = run_ingest(settings)
        bar.update(1)
    rows = (
        DeltaTable(str(settings.bronze_events_path)).count()
        if settings.bronze_events_path.exists()
        else 0
    )
    click.echo(
        f"load {info.loads_ids[-1] if info.loads_ids else '-'} done; raw.events holds {rows} events."
    )
    click.echo("Next: `lakepulse build` to rebuild the marts.")


def _waiting_for_worker() -> None:
    click.echo("waiting for the pipeline worker's cycle to end (a few seconds) ...", err=True)


@main.command(
    help="Run the pipeline worker in the foreground: load, check, build, publish and fire "
    "each freshness tier (live, session, daily) on its cadence, until Ctrl-C. Dagster runs "
    "the same worker (job pipeline_worker); run this one only where Dagster does not."
)
@click.option("--minutes", type=float, default=None, help="Stop after this many minutes.")
def worker(minutes: float | None) -> None:
    import signal
    import threading
    import time

    from lakepulse.operations.worker import CycleReport, run_worker

    settings = _settings()
    stop = threading.Event()
    for stopping in (signal.SIGINT, signal.SIGTERM):  # the cycle in progress ends first
        signal.signal(stopping, lambda *_: stop.set())

    def show(report: CycleReport) -> None:
        if report.error:
            took = sum(report.stages.values())
            click.echo(f"cycle failed after {took:.1f} s: {report.error}", err=True)
        else:
            click.echo(report.summary())

    click.echo(f"pipeline worker on {settings.home}; Ctrl-C stops it after the current cycle.")
    until = time.monotonic() + minutes * 60 if minutes else None
    run_worker(settings, stop, until, on_cycle=show)
    click.echo("worker stopped. `lakepulse sql` reads the marts as its last daily cycle left them.")


def _require_bronze(settings: Settings) -> None:
    """dbt reads bronze's Delta tables; before the first load there are none."""
    if not (settings.bronze_events_path / "_delta_log").exists():
        click.echo(
            f"error: bronze does not exist yet ({settings.bronze_events_path}): run "
            "`lakepulse ingest` first (it creates the tables, empty if no events were sent).",
            err=True,
        )
        sys.exit(2)


@main.command(
    help="dbt build: staging, intermediate and marts, with their tests. Any dbt build option "
    "passes through, e.g. lakepulse build --full-refresh --select mart_buyer_signals.",
    # dbt's options are dbt's: click passes them on rather than refusing them as unknown
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
def build(dbt_args: tuple[str, ...]) -> None:
    import subprocess

    from lakepulse.operations.rebuild import prepare_dbt, run_build
    from lakepulse.warehouse.schema_drift import migration_message

    settings = _settings()
    _require_bronze(settings)
    refused = prepare_dbt(settings).error  # dbt reads only validated trigger definitions
    if refused:
        click.echo(f"warning: {refused}; the previous valid triggers are built instead.", err=True)
    try:
        run_build(
            settings,
            *dbt_args,
            on_migrate=lambda drifts: click.echo(migration_message(drifts), err=True),
            on_wait=_waiting_for_worker,
        )
    except subprocess.CalledProcessError as err:
        click.echo(
            "dbt build failed; the lines above name the model or test. Fix it and rerun.", err=True
        )
        sys.exit(err.returncode)
    click.echo(
        'Marts rebuilt. Query them: lakepulse sql "select * from marts.mart_event_volume limit 10"'
    )


@main.command(
    help='Read-only SQL over bronze (raw.events) and marts, e.g. lakepulse sql "select 1".'
)
@click.argument("query")
@click.option("--max-rows", default=100, show_default=True)
def sql(query: str, max_rows: int) -> None:
    import duckdb

    from lakepulse.warehouse.replica import explorer

    conn, notes = explorer(_settings())
    for note in notes:
        click.echo(f"note: {note}", err=True)
    try:
        result = conn.sql(query)
    except duckdb.Error as err:
        click.echo(f"query failed: {err}", err=True)
        sys.exit(2)
    if result is None:
        return
    click.echo(result.limit(max_rows).df().to_string(index=False))


@main.command(
    help="Where an A/B experiment stands for a tenant, and optionally a PNG of its history."
)
@click.argument("experiment_id")
@click.option("--tenant", "tenant_id", required=True, help="Tenant whose results to show.")
@click.option("--metric", default="conversion", show_default=True, help="Metric to plot.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the lift and its always-valid confidence sequence over time here.",
)
def experiment(experiment_id: str, tenant_id: str, metric: str, plot_path: str | None) -> None:
    import duckdb

    from lakepulse.operations.report import current_results, history, plot_history

    settings = _settings()
    try:
        frame = current_results(settings, experiment_id, tenant_id)
    except duckdb.CatalogException:
        click.echo(
            "no experiment results yet: run `lakepulse build` (or wait for the sensor).", err=True
        )
        sys.exit(2)
    if frame.empty:
        click.echo(
            f"no results for experiment {experiment_id!r} and tenant {tenant_id!r}: is it in "
            "dbt_project/seeds/experiments.csv, and have its users been exposed yet?",
            err=True,
        )
        sys.exit(2)
    click.echo(frame.to_string(index=False))
    if plot_path:
        snapshots = history(settings, experiment_id, tenant_id, metric)
        if snapshots.empty:
            click.echo(f"no snapshots with a lift for metric {metric!r} yet.", err=True)
            sys.exit(2)
        title = f"{experiment_id} / {tenant_id} / {metric}"
        click.echo(f"wrote {plot_history(snapshots, title, Path(plot_path))}")


@main.command(help="Publish the marts to PostgreSQL schema `marts` (LAKEPULSE_PG_URL).")
@click.option("--all", "everything", is_flag=True, help="Copy every mart whole, changed or not.")
def publish(everything: bool) -> None:
    from lakepulse.warehouse.publish import publish as publish_marts

    settings = _settings()
    if not settings.pg_url:
        click.echo(
            "error: set LAKEPULSE_PG_URL to the serving PostgreSQL (postgresql://...)", err=True
        )
        sys.exit(2)

    if not settings.replica_path.exists():
        click.echo("error: no marts yet: run `lakepulse build` first", err=True)
        sys.exit(2)
    result = publish_marts(
        settings,
        settings.pg_url,
        force=everything,
        on_wait=lambda: click.echo("another publish is running (the pipeline's); waiting for it"),
    )
    for mart, rows in result.rows.items():
        how = f"delta of {result.deltas[mart]} keys" if mart in result.deltas else "copied"
        click.echo(f"  marts.{mart:<26} {rows:>10} rows  ({how})")
    click.echo(
        f"published {len(result.rows)} marts in {result.seconds:.1f} s, each atomically"
        + (f"; {len(result.unchanged)} unchanged, left as they are." if result.unchanged else ".")
    )
    click.echo(
        "Next: `lakepulse tenants bi-login NAME` for a BI login that sees one tenant's rows."
    )


@main.command(
    help="Start Apache Superset (LAKEPULSE_BI_PORT, default 8089) with the Business, Marketing "
    "and Operations dashboards for every tenant, over the serving PostgreSQL; Ctrl-C stops it."
)
def bi() -> None:
    from lakepulse.operations.bi import run_bi

    settings = _settings()
    if not settings.pg_url:
        click.echo(
            "error: set LAKEPULSE_PG_URL to the serving PostgreSQL (postgresql://...), or run "
            "`make demo`, which starts PostgreSQL and Superset together.",
            err=True,
        )
        sys.exit(2)
    sys.exit(run_bi(settings, click.echo))


@main.command(help="Erase one user's events from the landing log, bronze and every mart.")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--user", "user_id", required=True, help="The user_id the SDK sends.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase(tenant_id: str, user_id: str, yes: bool) -> None:
    from ingestion.tenants import TenantError
    from lakepulse.operations.erasure import erase_user

    settings = _settings()
    if not yes:
        click.confirm(
            f"Erase every event of user {user_id!r} of tenant {tenant_id!r}? This cannot be undone",
            abort=True,
        )
    try:
        report = erase_user(
            settings,
            tenant_id,
            user_id,
            progress=lambda step: click.echo(f"  ... {step}"),
        )
    except TenantError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    click.echo(
        f"erased {report.identities} identities: {report.landing_lines_removed} landing lines "
        f"({report.landing_files_rewritten} files rewritten), {report.bronze_rows_removed} bronze "
        f"rows, {report.rejected_rows_removed} rejected rows; marts rebuilt"
        + (" and republished." if settings.pg_url else ".")
    )
    click.echo(
        f"Audit record (user as keyed hash {report.user_hash[:12]}...) appended to "
        f"{settings.erasure_audit_path}."
    )


@main.command(help="Drop data older than its retention policy (LAKEPULSE_RETENTION_*_DAYS).")
def retention() -> None:
    from lakepulse.core.settings import RetentionPolicy
    from lakepulse.operations.retention import apply_retention, rebuild_after_retention

    settings = _settings()
    policy = RetentionPolicy.from_env()
    removed = apply_retention(settings, policy)
    for name, result in removed.items():
        details = ", ".join(f"{k}={v}" for k, v in result.items())
        click.echo(f"  {name:<22} keep {getattr(policy, name):>4} days: {details}")
    if rebuild_after_retention(settings, removed):
        click.echo("  marts                  rebuilt from bronze (events were dropped)")
    click.echo("Retention applied. Old file versions go at the next `lakepulse compact`.")


@main.command(help="Compact bronze's small files (OPTIMIZE) and VACUUM old versions.")
@click.option(
    "--retain-hours",
    default=168,
    show_default=True,
    help="Keep file versions younger than this (time travel window).",
)
def compact(retain_hours: int) -> None:
    from datetime import timedelta

    from lakepulse.operations.compaction import compact_and_vacuum

    compacted, vacuumed = compact_and_vacuum(_settings(), timedelta(hours=retain_hours))
    for table, result in compacted.items():
        click.echo(
            f"  raw.{table:<16} {result['files_removed']} files compacted into "
            f"{result['files_added']}, {vacuumed.get(table, 0)} old files vacuumed"
        )
    if not compacted:
        click.echo(
            "Nothing to compact: bronze does not exist yet. Send events, then `lakepulse ingest`."
        )


@main.command(help="Rebuild every mart from bronze (dbt full refresh), then republish.")
def replay() -> None:
    import subprocess

    from lakepulse.operations.replay import replay as replay_marts

    settings = _settings()
    _require_bronze(settings)
    try:
        replay_marts(settings)
    except subprocess.CalledProcessError as err:
        click.echo("replay failed; the dbt output above names the model.", err=True)
        sys.exit(err.returncode)
    click.echo("Every mart rebuilt from bronze" + (" and republished." if settings.pg_url else "."))


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

    settings = _settings()
    tenants = list(tenant_ids) or None
    # The fits read the warehouse the pipeline worker writes: between two of its cycles.
    from lakepulse.operations.rebuild import pipeline_turn

    with pipeline_turn(settings, on_wait=_waiting_for_worker):
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


@main.group(help="Tenants (merchants) and their write keys.")
def tenants() -> None:
    pass


@tenants.command("add", help="Register a tenant and print a new write key for its SDKs.")
@click.argument("name")
def tenants_add(name: str) -> None:
    from ingestion.tenants import TenantError, TenantRegistry

    settings = _settings()
    try:
        key = TenantRegistry(settings.tenants_file).add(name)
    except TenantError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    click.echo(key)
    click.echo(
        f"Tenant {name!r} can now send events: point a Segment SDK at {settings.collector_url} "
        "with this write key (shown once; it is stored hashed).",
        err=True,
    )


@tenants.command(
    "bi-login", help="Create (or reset) a PostgreSQL login that reads only NAME's rows."
)
@click.argument("name")
@click.option(
    "--customer-level",
    is_flag=True,
    help="Also read the marts with a row per user or session (fct_sessions, dim_users, ...).",
)
def tenants_bi_login(name: str, customer_level: bool) -> None:
    from urllib.parse import urlsplit

    from lakepulse.warehouse.publish import create_tenant_login

    settings = _settings()
    if not settings.pg_url:
        click.echo(
            "error: set LAKEPULSE_PG_URL to the serving PostgreSQL (postgresql://...)", err=True
        )
        sys.exit(2)
    role, password = create_tenant_login(settings.pg_url, name, customer_level=customer_level)
    url = urlsplit(settings.pg_url)
    click.echo(f"user:     {role}")
    click.echo(f"password: {password}")
    click.echo(
        f"host:     {url.hostname or 'localhost'}  port: {url.port or 5432}  database: {url.path.lstrip('/') or 'postgres'}  schema: marts"
    )
    scope = (
        "every mart, customer-level ones included"
        if customer_level
        else "the aggregate marts (add --customer-level for per-user and per-session marts)"
    )
    click.echo(
        f"Read-only: {scope}; row-level security shows this login only its tenant's rows.",
        err=True,
    )


@tenants.command("list", help="List registered tenants.")
def tenants_list() -> None:
    from ingestion.tenants import TenantRegistry

    names = TenantRegistry(_settings().tenants_file).tenants()
    for name in names:
        click.echo(name)
    if not names:
        click.echo("No tenants yet: `lakepulse tenants add NAME` registers one.", err=True)


@main.group(help="Triggers (dbt_project/triggers.yml): validate, list, fire, deliver, retry.")
def triggers() -> None:
    pass


@triggers.command("validate", help="Check triggers.yml; install it as the running definitions.")
def triggers_validate() -> None:
    from lakepulse.triggers.definitions import install, triggers_file

    installed = install(_settings())
    if installed.error:
        click.echo(f"error: {installed.error}", err=True)
        running = len(installed.definitions.triggers)
        click.echo(
            f"Refused: the previous valid definitions ({running} trigger(s)) keep running. "
            f"Fix {triggers_file()} and run `lakepulse triggers validate` again.",
            err=True,
        )
        sys.exit(1)
    click.echo(f"{triggers_file()} is valid: {len(installed.definitions.triggers)} trigger(s).")
    click.echo("They fire on the next `lakepulse triggers fire` (or Dagster run).", err=True)


@triggers.command("list", help="Each running trigger with its firings in the last hour and day.")
def triggers_list() -> None:
    from lakepulse.triggers.definitions import install
    from lakepulse.triggers.firing import firing_counts

    settings = _settings()
    installed = install(settings)
    if installed.error:
        click.echo(
            f"warning: triggers.yml refused, showing the running copy: {installed.error}", err=True
        )
    counts = firing_counts(settings)
    click.echo(f"{'trigger':<28} {'kind':<18} {'last hour':>9} {'last day':>9} {'total':>7}")
    for t in installed.definitions.triggers:
        c = counts.get(t.name, {"last_hour": 0, "last_day": 0, "total": 0})
        click.echo(
            f"{t.name:<28} {t.kind:<18} {c['last_hour']:>9} {c['last_day']:>9} {c['total']:>7}"
        )
    if not installed.definitions.triggers:
        click.echo("No triggers defined: add some to dbt_project/triggers.yml.", err=True)


@triggers.command("fire", help="Record new firings exactly once and write them back as events.")
@click.option("--dry-run", is_flag=True, help="Show what would fire; record nothing.")
def triggers_fire(dry_run: bool) -> None:
    from lakepulse.triggers.firing import fire

    result = fire(_settings(), dry_run=dry_run)
    if result.refused:
        click.echo(
            f"warning: triggers.yml refused, the previous definitions ran: {result.refused}",
            err=True,
        )
    for name, outcome in result.outcomes.items():
        line = (
            f"{name}: {len(outcome.fired)} new, {outcome.already_recorded} already recorded, "
            f"{outcome.cooling_down} in cooldown"
        )
        if outcome.outside_propensity:
            line += f", {outcome.outside_propensity} outside the propensity range"
        click.echo(line + (f" ({outcome.note})" if outcome.note else ""))
        if dry_run:
            for row in outcome.fired:
                click.echo(
                    f"  would fire {row['firing_id']} {row['tenant_id']} "
                    f"{row['user_id'] or '-'} {row['arm']}"
                )
    click.echo(result.summary() + ".")
    click.echo(
        "Nothing was recorded (dry run)."
        if dry_run
        else "Firings are in fct_trigger_firings after the next build; their `Trigger Fired` "
        "events reach bronze with the next `lakepulse ingest`.",
        err=True,
    )


@triggers.command(
    "deliver",
    help="One delivery pass: send every due treatment firing to its destinations (webhook, "
    "e-mail, Slack), retrying on the schedule and dead-lettering what cannot be delivered.",
)
def triggers_deliver() -> None:
    from lakepulse.triggers.delivery import DestinationError, deliver_pass

    settings = _settings()
    try:
        result = deliver_pass(settings)
    except DestinationError as err:
        click.echo(f"error: {err}", err=True)
        click.echo("Fix the destinations in the triggers file, then rerun.", err=True)
        sys.exit(2)
    click.echo(result.summary())
    if result.dead:
        click.echo(
            "Dead letters are in marts.fct_trigger_deliveries; re-queue them with "
            "`lakepulse triggers retry [--trigger T]` once the receiver is fixed."
        )
    elif result.deferred or result.retrying:
        click.echo("The rest goes at the next pass (the Dagster sensor runs one every 30 s).")


@triggers.command("retry", help="Re-queue dead letters, from the start of the retry schedule.")
@click.option("--trigger", "trigger", default=None, help="Only this trigger's dead letters.")
@click.option("--destination", default=None, help="Only this destination's dead letters.")
def triggers_retry(trigger: str | None, destination: str | None) -> None:
    from lakepulse.triggers.delivery import requeue_dead

    count = requeue_dead(_settings(), trigger=trigger, destination=destination)
    if count is None:
        click.echo("a delivery pass is running; rerun when it ends.", err=True)
        sys.exit(1)
    click.echo(f"re-queued {count} dead letters. Next: `lakepulse triggers deliver` sends them.")


if __name__ == "__main__":
    main()
