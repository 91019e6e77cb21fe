"""Purchase propensity against the best any model can do (issue #27): the real simulator in its
``known_propensity`` mode draws every visit's order with a probability it records (what the
visit shows, through a known logistic function); the visits go through the landing log, the
loader and dbt, `lakepulse predict`'s workflow trains the model, and this prints the model's
AUC on its held-out day beside the AUC of the simulator's true probabilities on the same
sessions and labels. The target: within 0.03.

    python -m benchmarks.bench_propensity [--days 10] [--visits-per-day 3000] [--seed 11]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lakepulse.core.settings import Settings, disable_telemetry

START = datetime(2026, 6, 1, tzinfo=UTC)
TENANT = "shop"


def simulate(settings: Settings, days: int, visits_per_day: int, seed: int) -> dict[str, float]:
    """The simulator's visits (:func:`lakepulse.demo.history.simulate_visits`, as in the demo's
    history) written into the landing log, as the collector would; returns the simulator's
    truth (first event's messageId -> buying probability)."""
    from lakepulse.demo import history

    end = START + timedelta(days=days)
    messages, truth = history.simulate_visits(TENANT, START, end, visits_per_day, seed)
    history.land(settings, TENANT, messages, delay=timedelta(seconds=1))
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--visits-per-day", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    disable_telemetry()
    # DuckDB's .df() on pandas 3.1 warns about its own use of `inplace`: not ours to fix.
    warnings.filterwarnings("ignore", message="The inplace keyword")
    with tempfile.TemporaryDirectory(prefix="bench-propensity-") as tmp:
        os.environ["LAKEPULSE_HOME"] = str(Path(tmp) / "home")
        settings = Settings.from_env()
        settings.ensure_dirs()
        started = time.perf_counter()
        truth = simulate(settings, args.days, args.visits_per_day, args.seed)
        from ingestion.pipeline import run_ingest
        from lakepulse.operations.predict import fit_propensity
        from lakepulse.operations.rebuild import run_build

        run_ingest(settings)
        run_build(settings, "--select", "+int_session_features", "+int_tenant_clocks", capture=True)
        print(
            f"{len(truth)} visits simulated, loaded and modelled in {time.perf_counter() - started:.0f} s"
        )
        [result] = fit_propensity(settings)
        if result.accuracy is None:
            raise SystemExit(f"no model: {result.error}")

        # The same holdout sessions and labels, with the simulator's probabilities.
        from lakepulse.demo.history import holdout_limit

        limit, measured = holdout_limit(settings, {TENANT: truth})[TENANT]
        ours = result.accuracy.auc
        print(
            f"held-out day: {result.accuracy.holdout_sessions} sessions "
            f"({result.accuracy.holdout_orders} ordered within 24 h), "
            f"{measured} with the simulator's probability"
        )
        print(f"propensity model AUC           {ours:.4f}")
        print(f"simulator's true probabilities {limit:.4f}  (the best any model can do)")
        verdict = "within" if abs(limit - ours) <= 0.03 else "NOT within"
        print(
            f"difference {limit - ours:+.4f}: {verdict} the 0.03 target; ratio {ours / limit:.3f}"
        )


if __name__ == "__main__":
    main()
