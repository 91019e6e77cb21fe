"""Landing log -> Delta bronze through our dlt pipeline, against a raw ``write_deltalake`` of
the same Arrow data in the same run.

    python -m benchmarks.bench_loader --events 200000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from deltalake import write_deltalake

from ingestion.contract import LANDING_SCHEMA, normalize
from ingestion.landing import LandingLog, read_files
from ingestion.pipeline import EVENTS, run_ingest, to_bronze
from lakepulse.core.settings import Settings, disable_telemetry
from lakepulse.demo.simulator import SimConfig, TrafficGenerator


def make_landing(settings: Settings, events: int, per_file: int = 500) -> list[Path]:
    generator = TrafficGenerator(SimConfig(seed=1, tenants={"acme": "k1", "globex": "k2"}))
    received = datetime.now(UTC)
    landing = LandingLog(settings.landing_dir)
    batches: dict[str, list[dict]] = {}
    paths = []
    for count, (tenant, _, message) in enumerate(generator.events()):
        if count >= events:
            break
        batches.setdefault(tenant, []).append(
            normalize(message, tenant_id=tenant, secret=b"s", received_at=received)
        )
        if len(batches[tenant]) == per_file:
            paths.append(landing.write(tenant, "events", batches.pop(tenant)))
    paths += [landing.write(t, "events", rows) for t, rows in batches.items()]
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    disable_telemetry()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"LAKEPULSE_HOME": tmp})
        settings.ensure_dirs()
        paths = make_landing(settings, args.events)

        started = time.perf_counter()
        run_ingest(settings)
        ours = time.perf_counter() - started

        started = time.perf_counter()
        files = list(LandingLog(settings.landing_dir).files("events"))
        table = to_bronze(read_files(files, LANDING_SCHEMA), EVENTS, time.time_ns() // 1000)
        write_deltalake(str(Path(tmp) / "baseline"), table, partition_by=["event_date"])
        baseline = time.perf_counter() - started

    print(f"loader benchmark: {args.events} events in {len(paths)} landing files")
    print(f"  lakepulse dlt load      {ours:7.2f} s  {args.events / ours:10.0f} events/s")
    print(f"  raw write_deltalake     {baseline:7.2f} s  {args.events / baseline:10.0f} events/s")
    print(f"  ratio (ours / baseline throughput): {baseline / ours:.2f}   target >= 0.5")


if __name__ == "__main__":
    main()
