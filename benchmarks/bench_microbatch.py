"""One minute of traffic (default 60,000 events = 1,000 events/s) loaded into a bronze table
that already holds a large history (default 10 M events), against the same minute loaded into
an empty bronze table in the same run: the ratio shows how load cost grows with history.

    python -m benchmarks.bench_microbatch --history 10000000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from benchmarks.bench_loader import make_landing
from ingestion.pipeline import run_ingest
from lakepulse.core.settings import Settings, disable_telemetry

CHUNK = 1_000_000


def synthetic_history(template: pa.Table, rows: int, rate: float = 1000.0):
    """Rows shaped like bronze, arriving at ``rate`` events/s up to now, in chunks (so at
    1,000 events/s, 10 M events are the last 2.8 hours: one or two event-date partitions)."""
    rng = np.random.default_rng(0)
    span_us = int(rows / rate * 1_000_000)
    start = datetime.now(UTC) - timedelta(microseconds=span_us)
    done = 0
    while done < rows:
        n = min(CHUNK, rows - done)
        offsets = np.sort(rng.integers(done * span_us // rows, (done + n) * span_us // rows, n))
        ts = pa.array(int(start.timestamp() * 1e6) + offsets, pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        )
        columns = {}
        for field in template.schema:
            if field.name in {
                "timestamp",
                "received_at",
                "loaded_at",
                "original_timestamp",
                "sent_at",
            }:
                columns[field.name] = ts.cast(field.type)
            elif field.name == "event_date":
                columns[field.name] = ts.cast(pa.date32())
            elif field.name == "message_id":
                columns[field.name] = pa.array([f"h{done + i:012d}" for i in range(n)], pa.string())
            elif field.name == "tenant_id":
                columns[field.name] = pa.array(np.where(rng.random(n) < 0.5, "acme", "globex"))
            elif field.name == "type":
                columns[field.name] = pa.array(["track"] * n)
            else:
                columns[field.name] = pa.repeat(template[field.name][0], n).cast(field.type)
        yield pa.table(columns, schema=template.schema)
        done += n


def timed_minute(settings: Settings, events: int) -> float:
    make_landing(settings, events)
    started = time.perf_counter()
    run_ingest(settings)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=int, default=10_000_000)
    parser.add_argument("--minute", type=int, default=60_000)
    args = parser.parse_args()
    disable_telemetry()
    with tempfile.TemporaryDirectory() as empty_tmp, tempfile.TemporaryDirectory() as full_tmp:
        empty = Settings.from_env({"LAKEPULSE_HOME": empty_tmp})
        full = Settings.from_env({"LAKEPULSE_HOME": full_tmp})
        for s in (empty, full):
            s.ensure_dirs()

        # Bronze with history: a real first load (dlt creates the table), then history appended.
        timed_minute(full, 1_000)
        template = DeltaTable(str(full.bronze_events_path)).to_pyarrow_table()
        started = time.perf_counter()
        for chunk in synthetic_history(template, args.history):
            write_deltalake(
                str(full.bronze_events_path), chunk, mode="append", partition_by=["event_date"]
            )
        print(f"history of {args.history} events written in {time.perf_counter() - started:.1f} s")

        baseline = timed_minute(empty, args.minute)
        ours = timed_minute(full, args.minute)
        rows = DeltaTable(str(full.bronze_events_path)).count()
    print(f"micro-batch benchmark: one minute of {args.minute} events")
    print(f"  into empty bronze            {baseline:6.2f} s")
    print(f"  into bronze with {args.history:>9} {ours:6.2f} s   (target < 2 s)")
    print(f"  ratio (with history / empty): {ours / baseline:.2f}   final rows {rows}")


if __name__ == "__main__":
    main()
