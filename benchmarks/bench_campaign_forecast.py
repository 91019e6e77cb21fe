"""Campaign forecasts through the pipeline (issue #27): simulated campaigns of one tenant whose
day-7 revenue follows a known law of their first 4 hours (log-normal noise) go through the
landing log, the loader and dbt; ``mart_campaign_forecast`` forecasts each from the campaigns
that had ended by its day 7 (the last forecast made while it ran). This prints the 80 % intervals' coverage on the ended
campaigns (target 80 % +- 5) and the median error beside the naive forecast (4-hour revenue x
the median day-7/4-hour ratio of the campaigns ended by then), computed here from what was
sent.

    python -m benchmarks.bench_campaign_forecast [--campaigns 150] [--noise 0.3] [--seed 7]
        [--elasticity 1.0]

With ``--elasticity 1`` the day-7 revenue is a constant multiple of the 4-hour revenue (times
noise), which is exactly the naive forecast's law; below 1, bigger launches grow less after
their first hours, which a constant ratio cannot follow.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np

from lakepulse.core.settings import Settings, disable_telemetry

START = datetime(2026, 1, 1, 9, tzinfo=UTC)
TENANT = "shop"


def session(mid: str, when: datetime, campaign: str, revenue: float) -> list[dict]:
    """A campaign session: a page view carrying the campaign, and an order a minute later."""
    context = {"campaign": {"source": "newsletter", "medium": "email", "name": campaign}}
    base = {"anonymousId": f"dev-{mid}", "context": context}
    return [
        base
        | {
            "type": "page",
            "messageId": f"{mid}-p",
            "timestamp": when.isoformat(),
            "properties": {"path": "/"},
        },
        base
        | {
            "type": "track",
            "event": "Order Completed",
            "messageId": f"{mid}-o",
            "timestamp": (when + timedelta(minutes=1)).isoformat(),
            "properties": {"order_id": f"o-{mid}", "revenue": round(revenue, 2)},
        },
    ]


def simulate(
    settings: Settings, campaigns: int, noise: float, seed: int, elasticity: float
) -> list[dict]:
    """One campaign a day: its 4-hour revenue r4 log-normal, its day-7 revenue
    e^2 * r4 * (r4 / e^5)^(elasticity - 1) times log-normal noise (e^5: the 4-hour
    revenue's median, so the typical campaign grows e^2 whatever the elasticity); the rest
    arrives 3 days after launch. Returns what was sent."""
    from ingestion.contract import normalize
    from ingestion.landing import LandingLog

    rng = np.random.default_rng(seed)
    sent, messages = [], []
    for k in range(campaigns):
        launched = START + timedelta(days=k)
        r4 = float(np.round(rng.lognormal(5.0, 0.8), 2))
        growth = np.exp(2.0 + rng.normal(0, noise)) * (r4 / np.exp(5.0)) ** (elasticity - 1)
        r7 = float(np.round(r4 * growth, 2))
        name = f"c{k:03d}"
        messages += session(f"{name}-a", launched, name, r4)
        messages += session(f"{name}-b", launched + timedelta(days=3), name, r7 - r4)
        sent.append({"campaign": name, "launched": launched, "r4": r4, "r7": r7})
    clock = START + timedelta(days=campaigns + 8)
    messages.append(
        {
            "type": "page",
            "messageId": "clock",
            "anonymousId": "dev-clock",
            "timestamp": clock.isoformat(),
            "properties": {"path": "/"},
        }
    )
    rows = [
        normalize(
            m,
            tenant_id=TENANT,
            secret=b"s",
            received_at=datetime.fromisoformat(m["timestamp"]) + timedelta(seconds=1),
        )
        for m in messages
    ]
    LandingLog(settings.landing_dir).write(TENANT, "events", rows)
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--campaigns", type=int, default=150)
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--elasticity", type=float, default=1.0)
    args = parser.parse_args()
    disable_telemetry()
    with tempfile.TemporaryDirectory(prefix="bench-campaign-forecast-") as tmp:
        os.environ["LAKEPULSE_HOME"] = str(Path(tmp) / "home")
        settings = Settings.from_env()
        settings.ensure_dirs()
        started = time.perf_counter()
        sent = simulate(settings, args.campaigns, args.noise, args.seed, args.elasticity)
        from ingestion.pipeline import run_ingest
        from lakepulse.operations.rebuild import run_build

        run_ingest(settings)
        run_build(settings, "--select", "+mart_campaign_forecast", capture=True)
        with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
            rows = conn.sql(
                "select campaign, revenue_4h, actual_revenue_7d, forecast_revenue_7d, "
                "forecast_low, forecast_high, within_interval from marts.mart_campaign_forecast "
                "where status = 'ended' order by launched_at"
            ).fetchall()
        print(
            f"{len(sent)} campaigns simulated, loaded and forecast in "
            f"{time.perf_counter() - started:.0f} s"
        )
        truth = {s["campaign"]: s for s in sent}
        hits, errors, naive = [], [], []
        for index, (name, r4, actual, point, low, high, within) in enumerate(rows):
            assert (r4, actual) == (truth[name]["r4"], truth[name]["r7"]), name
            if point is None:
                continue
            # An ended campaign's forecast is the last made while it ran (its day 7), from the
            # campaigns ended by then: every one launched before it.
            earlier = [truth[rows[j][0]] for j in range(index)]
            ratio = float(np.median([s["r7"] / s["r4"] for s in earlier]))
            hits.append(low <= actual <= high)
            assert within == hits[-1], name
            errors.append(abs(point - actual) / actual)
            naive.append(abs(r4 * ratio - actual) / actual)
        print(f"forecasts on ended campaigns   {len(hits)}")
        print(f"80 % interval coverage         {np.mean(hits):.1%}  (target 80 % +- 5)")
        print(f"median absolute % error        {np.median(errors):.3f}")
        print(
            f"naive forecast's               {np.median(naive):.3f}  "
            f"(ratio {np.median(errors) / np.median(naive):.2f})"
        )


if __name__ == "__main__":
    main()
