"""The triggers' share of a minute's build, at 1 M and 10 M events of history, in the same
run: the dbt nodes that exist for triggers (buyer signals, tenant clocks, every trigger kind
model, fct_trigger_firings and their tests) plus the fire run itself (read candidates, record,
write back), against the whole minute. The ratio (10 M / 1 M) of the triggers' cost shows how
it grows with history; the target is at most 1.5.

    python -m benchmarks.bench_triggers --sizes 1000000 10000000
    python -m benchmarks.bench_triggers --homes /tmp/kept-1m /tmp/kept-10m

``--homes`` uses data directories kept by ``bench_incremental --keep`` (a minute of traffic is
added to them) instead of building the histories.

History and live minutes are those of bench_incremental (the real simulator, loader and dbt
build); the project's triggers.yml is installed, so every built-in kind runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench_incremental import History, KeptHistory
from lakepulse.core.settings import Settings, disable_telemetry
from lakepulse.triggers.definitions import install
from lakepulse.triggers.firing import fire

TRIGGER_NODES = (
    "int_buyer_signals",
    "mart_buyer_signals",
    "int_tenant_clocks",
    "trigger_",
    "big_cart",
    "fct_trigger_firings",
    "source_unique_triggers",
)


def trigger_seconds(history: History) -> tuple[float, float]:
    """Seconds the last dbt command spent in trigger nodes, and in all nodes."""
    results = json.loads((history.settings.dbt_target_dir / "run_results.json").read_text())
    nodes = results["results"]
    ours = sum(
        r["execution_time"] for r in nodes if any(part in r["unique_id"] for part in TRIGGER_NODES)
    )
    return ours, sum(r["execution_time"] for r in nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--minute", type=int, default=60_000)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--base", type=int, default=1_000_000)
    parser.add_argument("--homes", type=Path, nargs="+", help="kept data directories instead")
    args = parser.parse_args()
    disable_telemetry()
    print(f"triggers benchmark: one minute of {args.minute:,} events on top of history")
    rows: dict[int, dict[str, list[float]]] = {}
    with contextlib.ExitStack() as stack:
        histories = []
        for size_or_home in args.homes or args.sizes:
            if args.homes:
                history = KeptHistory(size_or_home)
                install(history.settings)
            else:
                home = stack.enter_context(tempfile.TemporaryDirectory())
                install(Settings.from_env({"LAKEPULSE_HOME": home}))
                history = History(size_or_home, home, args.base, "days")
            fire(history.settings)  # the first deploy's firings, not part of a minute
            histories.append(history)
            rows[history.size] = {"minute": [], "dbt_triggers": [], "fire": []}
            print(f"  history {history.size:>10,} ready", flush=True)
        for seed in range(2, 2 + args.minutes):
            for history in histories:
                build = history.live_minute(args.minute, seed)
                ours, _ = trigger_seconds(history)
                started = time.perf_counter()
                fire(history.settings)
                fired = time.perf_counter() - started
                rows[history.size]["minute"].append(build + fired)
                rows[history.size]["dbt_triggers"].append(ours)
                rows[history.size]["fire"].append(fired)
                print(
                    f"  minute {seed - 1} on {history.size:>10,}: build {build:5.1f} s, "
                    f"trigger nodes {ours:4.1f} s, fire {fired:4.1f} s",
                    flush=True,
                )
    cost = {}
    for size, row in rows.items():
        minute = statistics.median(row["minute"])
        ours = statistics.median(row["dbt_triggers"]) + statistics.median(row["fire"])
        cost[size] = ours
        print(
            f"  history {size:>10,}: minute {minute:5.1f} s, triggers {ours:4.1f} s "
            f"({ours / minute:.0%} of the minute)"
        )
    if len(cost) > 1:
        first, last = histories[0].size, histories[-1].size
        print(
            f"  ratio (triggers' cost at {last:,} / at {first:,}): "
            f"{cost[last] / cost[first]:.2f}   (target <= 1.5)"
        )


if __name__ == "__main__":
    main()
