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


def simulate(
    settings: Settings, campaigns: int, noise: float, seed: int, elasticity: float
) -> list[dict]:
    """One campaign a day from START (the law of :func:`lakepulse.demo.history.simulate_campaigns`,
    which the demo's history uses too), then an event 8 days after the last launch (the
    tenant's clock), as one landing file. Returns what was sent."""
    from lakepulse.demo import history

    launches = [START + timedelta(days=k) for k in range(campaigns)]
    messages, sent = history.simulate_campaigns(launches, noise, seed, elasticity)
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
    history.land(settings, TENANT, messages, delay=timedelta(seconds=1))
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
