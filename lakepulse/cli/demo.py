"""``lakepulse demo``, ``collect`` and ``simulate``: the collector and traffic to try it with."""

from __future__ import annotations

import sys

import click

from lakepulse.cli.app import current_settings, main


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
    sys.exit(run_demo(current_settings(), rate, click.echo, with_bi=bi, with_history=with_history))


@main.command(
    help="Serve the Segment-compatible collector (LAKEPULSE_COLLECTOR_PORT, default 8088)."
)
@click.option("--workers", default=1, show_default=True, help="Processes sharing the port.")
def collect(workers: int) -> None:
    from ingestion.collector import serve

    settings = current_settings()
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

    settings = current_settings()
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
