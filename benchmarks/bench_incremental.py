"""The minute's dbt run against history: one minute of traffic (default 60,000 events =
1,000 events/s) built incrementally on top of 1 M and of 10 M events of history, in the same
run; the ratio (10 M / 1 M) shows how a minute's cost grows with history. Also prints the full
refresh's events/s at each size.

    python -m benchmarks.bench_incremental --sizes 1000000 10000000

History is simulated storefront traffic (the real simulator, seeded), loaded by the real
loader, then tiled back in time with fresh ids (each copy is other visitors, users and orders),
so sessions, funnels, identities and cohorts look like a shop's, not like one repeated row.
By default each copy is one day earlier (`--spacing days`: a shop with `--base` events a day,
10 M events of history are ten days); `--spacing contiguous` packs the copies back to back
(10 M events in under 3 hours of one day), the worst case for units that are days or hours.

The minute's figure is the `dbt build` the pipeline runs, the median of `--minutes` (3)
minutes, the sizes' minutes alternating so that load on a shared machine falls on both sides;
the refresh of the read replica that follows it (a copy of the marts for readers) is timed and
printed apart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from ingestion.contract import normalize
from ingestion.landing import LandingLog
from ingestion.pipeline import run_ingest
from lakepulse.core.duck import connect
from lakepulse.core.settings import DBT_PROJECT_DIR, Settings, disable_telemetry
from lakepulse.demo.simulator import SimConfig, TrafficGenerator
from lakepulse.operations.rebuild import ensure_sources
from lakepulse.warehouse.dbt import build_args, dbt_command, remember_build
from lakepulse.warehouse.replica import refresh_replica

TENANTS = {"acme": "k1", "globex": "k2"}
# About 4 events per visit: 240 visits/s is ~1,000 events/s.
VISITS_PER_SECOND = 240.0
ID_COLUMNS = ("message_id", "anonymous_id", "user_id", "order_id", "previous_id")
TIME_COLUMNS = ("timestamp", "original_timestamp", "sent_at", "received_at", "loaded_at")


def land_traffic(settings: Settings, events: int, start: datetime, seed: int) -> datetime:
    """Simulated traffic from ``start`` into the landing log, received as it happens; returns
    the simulated time reached."""
    generator = TrafficGenerator(
        SimConfig(seed=seed, tenants=TENANTS, visits_per_second=VISITS_PER_SECOND), clock=start
    )
    landing = LandingLog(settings.landing_dir)
    batches: dict[str, list[dict]] = {}
    for tenant, _, message in islice(generator.events(), events):
        message = {k: v for k, v in message.items() if not k.startswith("_")}
        received = datetime.fromisoformat(message["timestamp"]) + timedelta(seconds=1)
        batches.setdefault(tenant, []).append(
            normalize(message, tenant_id=tenant, secret=b"s", received_at=received)
        )
        if len(batches[tenant]) == 1_000:
            landing.write(tenant, "events", batches.pop(tenant))
    for tenant, rows in batches.items():
        landing.write(tenant, "events", rows)
    return generator._now()


def _shifted(table: pa.Table, copy: int, span: timedelta) -> pa.Table:
    """The same traffic ``copy`` spans earlier, by other people (ids suffixed)."""
    shift = pa.scalar(span * copy, pa.duration("us"))
    columns = {}
    for field in table.schema:
        column = table[field.name]
        if field.name in ID_COLUMNS:
            column = pc.binary_join_element_wise(column, pa.scalar(f"~{copy}"), "")
        elif field.name in TIME_COLUMNS:
            column = pc.subtract(column, shift).cast(field.type)
        elif field.name == "event_date":
            column = pc.subtract(table["timestamp"], shift).cast(pa.date32())
        columns[field.name] = column
    return pa.table(columns, schema=table.schema)


def make_history(settings: Settings, base: pa.Table, events: int, span: timedelta) -> None:
    """Bronze with ``events`` rows: ``base`` (already loaded) plus copies further back."""
    path = str(settings.bronze_events_path)
    copy = 1
    written = base.num_rows
    while written < events:
        chunk = _shifted(base.slice(0, events - written), copy, span)
        write_deltalake(path, chunk, mode="append", partition_by=["event_date"])
        written += chunk.num_rows
        copy += 1


def timed_dbt(settings: Settings, *args: str) -> tuple[float, float]:
    """Seconds of the dbt command, and of the replica refresh that follows a build."""
    started = time.perf_counter()
    subprocess.run(
        dbt_command(settings, *args),
        env=settings.process_env(),
        cwd=DBT_PROJECT_DIR,
        check=True,
        capture_output=True,
    )
    built = time.perf_counter()
    refresh_replica(settings)
    return built - started, time.perf_counter() - built


def slowest_nodes(settings: Settings, top: int = 6) -> str:
    """The nodes the last dbt command spent most time on, from dbt's run_results.json."""
    results = json.loads((settings.dbt_target_dir / "run_results.json").read_text())["results"]
    ranked = sorted(results, key=lambda r: r["execution_time"], reverse=True)[:top]
    return ", ".join(f"{r['unique_id'].split('.')[-1]} {r['execution_time']:.1f}" for r in ranked)


class History:
    """A data directory with ``size`` events of history, fully built, ready for live minutes."""

    def __init__(self, size: int, home: str, base_events: int, spacing: str) -> None:
        self.size = size
        self.settings = settings = Settings.from_env({"LAKEPULSE_HOME": home})
        settings.ensure_dirs()
        start = datetime(2026, 11, 1, tzinfo=UTC)
        self.reached = land_traffic(settings, min(base_events, size), start, seed=1)
        run_ingest(settings)
        base = DeltaTable(str(settings.bronze_events_path)).to_pyarrow_table()
        span = (
            timedelta(days=1) if spacing == "days" else self.reached - start + timedelta(minutes=1)
        )
        make_history(settings, base, size, span=span)
        ensure_sources(settings)
        self.full_refresh_s, _ = timed_dbt(settings, *build_args(full_refresh=True))
        remember_build(settings, build_args(full_refresh=True))
        self.full_nodes = slowest_nodes(settings)
        self.minutes_s: list[float] = []
        self.replicas_s: list[float] = []

    def minute_seed(self, seed: int) -> int:
        """The simulator's seed for a live minute: a seed fixes the message ids it sends."""
        return seed

    def live_minute(self, events: int, seed: int) -> float:
        """One minute of live traffic after the history, loaded then built as the sensor's run
        would."""
        self.reached = land_traffic(
            self.settings, events, self.reached + timedelta(seconds=1), seed=self.minute_seed(seed)
        )
        run_ingest(self.settings)
        build, replica = timed_dbt(self.settings, *build_args(settings=self.settings))
        self.minutes_s.append(build)
        self.replicas_s.append(replica)
        self.minute_nodes = slowest_nodes(self.settings)
        return build


class KeptHistory(History):
    """A data directory built before (``bench_incremental --keep``): only its clock is read."""

    def __init__(self, home: Path) -> None:
        self.settings = Settings.from_env({"LAKEPULSE_HOME": str(home)})
        conn = connect()
        try:
            latest, size = conn.execute(
                f"select max(timestamp), count(*) from delta_scan('{self.settings.bronze_events_path}')"
            ).fetchone()
        finally:
            conn.close()
        self.size, self.reached = size, latest
        self.minutes_s: list[float] = []
        self.replicas_s: list[float] = []

    def minute_seed(self, seed: int) -> int:
        """A seed no earlier run on this directory used (from its clock): the same seed again
        would re-send the same message ids with new timestamps, a client no SDK is."""
        return int(self.reached.timestamp()) * 100 + seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--minute", type=int, default=60_000)
    parser.add_argument(
        "--minutes", type=int, default=3, help="live minutes built per size (median reported)"
    )
    parser.add_argument("--base", type=int, default=1_000_000, help="simulated events per copy")
    parser.add_argument("--dir", type=Path, default=None, help="where to build (default: /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    parser.add_argument(
        "--spacing",
        choices=["days", "contiguous"],
        default="days",
        help="history copies one day apart (default) or back to back",
    )
    args = parser.parse_args()
    disable_telemetry()
    print(
        f"incremental dbt benchmark: one minute of {args.minute} events on top of history "
        f"({args.base:,} simulated events per copy, copies {args.spacing.replace('days', 'a day apart')})"
    )
    with contextlib.ExitStack() as stack:
        histories = []
        for size in args.sizes:
            if args.keep:
                home = tempfile.mkdtemp(dir=args.dir)
                print(f"keeping LAKEPULSE_HOME={home}", flush=True)
            else:
                home = stack.enter_context(tempfile.TemporaryDirectory(dir=args.dir))
            history = History(size, home, args.base, args.spacing)
            print(
                f"  history {size:>10,}  full refresh {history.full_refresh_s:6.1f} s"
                f" ({size / history.full_refresh_s:,.0f} events/s)",
                flush=True,
            )
            print(f"    slowest in the full refresh (s): {history.full_nodes}", flush=True)
            histories.append(history)
        # The sizes' minutes alternate (1 M, 10 M, 1 M, ...), so a stretch of load on this
        # shared machine falls on both sides of the ratio rather than on one; each size's
        # figure is the median of its minutes.
        for seed in range(2, 2 + args.minutes):
            for history in histories:
                took = history.live_minute(args.minute, seed)
                print(f"  minute {seed - 1} on {history.size:>10,}: {took:5.1f} s", flush=True)
    for history in histories:
        print(
            f"  history {history.size:>10,}  minute run {statistics.median(history.minutes_s):6.1f} s"
            f"  (each: {', '.join(f'{t:.1f}' for t in history.minutes_s)};"
            f" then replica refresh {statistics.median(history.replicas_s):4.1f} s)"
        )
        print(f"    slowest in the last minute run (s): {history.minute_nodes}", flush=True)
    if len(histories) > 1:
        first, last = histories[0], histories[-1]
        ratio = statistics.median(last.minutes_s) / statistics.median(first.minutes_s)
        print(
            f"  ratio (minute run at {last.size:,} / at {first.size:,}):"
            f" {ratio:.2f}   (target <= 1.5)"
        )


if __name__ == "__main__":
    main()
