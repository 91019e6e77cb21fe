"""Trigger delivery to a loopback webhook receiver, in firings/s, with and without failures,
and the cost of a pass when nothing is due (what the 30 s sensor pays while idle).

Baselines measured in the same run:
- throughput: the same signed bodies POSTed by a bare ``http.client`` loop at the same
  concurrency, with no state, no Delta and no DuckDB (the ceiling of this receiver here);
- with failures (every 5th request answered 503 once): the failure-free run;
- empty pass: the same pass forced to scan both tables (what the first pass in a process pays).

    python -m benchmarks.bench_delivery --firings 2000
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import yaml
from deltalake import write_deltalake

from lakepulse.core.settings import Settings, disable_telemetry
from lakepulse.demo.sink import WebhookSink
from lakepulse.triggers import delivery
from lakepulse.warehouse.trigger_tables import FIRINGS_SCHEMA, ensure_trigger_tables

CONCURRENCY = 4
ENV = {"BENCH_SECRET": "bench"}


def firings(count: int) -> list[dict]:
    fired = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "firing_id": f"bench-{i:07d}",
            "tenant_id": "acme",
            "trigger": "cart_reminder",
            "kind": "abandoned_cart",
            "user_id": f"u{i}",
            "fired_at": fired + timedelta(milliseconds=i),
            "occurred_at": fired,
            "arm": "treatment",
            "payload": json.dumps({"cart_value": 10 + i % 90, "items": 1 + i % 4}),
            "destinations": '["hook"]',
        }
        for i in range(count)
    ]


def prepare(root: Path, name: str, rows: list[dict], url: str) -> tuple[Settings, Path]:
    settings = Settings.from_env({"LAKEPULSE_HOME": str(root / name)})
    settings.ensure_dirs()
    ensure_trigger_tables(settings)
    write_deltalake(
        str(settings.trigger_firings_path),
        pa.Table.from_pylist(rows, schema=FIRINGS_SCHEMA),
        mode="append",
    )
    triggers = root / f"{name}.yml"
    hook = {
        "type": "webhook",
        "url": url,
        "secret": "${BENCH_SECRET}",
        "allow_private": True,
        "concurrency": CONCURRENCY,
        "timeout_seconds": 10,
    }
    triggers.write_text(yaml.safe_dump({"destinations": {"hook": hook}, "triggers": []}))
    return settings, triggers


def deliver_all(settings: Settings, triggers: Path, total: int) -> tuple[float, int]:
    """Passes until every firing is delivered; the clock jumps past each backoff."""
    clock = datetime.now(UTC)
    delivered = passes = 0
    started = time.perf_counter()
    while delivered < total:
        result = delivery.deliver_pass(
            settings, triggers_path=triggers, now=clock, env=ENV, per_destination_limit=total
        )
        delivered += result.delivered
        passes += 1
        clock += timedelta(hours=1)
        if passes > 20:
            raise RuntimeError(f"only {delivered} of {total} delivered after 20 passes")
    return time.perf_counter() - started, passes


def bare_posts(rows: list[dict], url: str) -> float:
    parts = urlsplit(url)
    bodies = [delivery.webhook_body(r, None) for r in rows]

    def post(body: bytes) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        headers = {
            "Content-Type": "application/json",
            "X-Lakepulse-Signature": delivery.sign(body, "bench"),
        }
        conn.request("POST", parts.path, body=body, headers=headers)
        conn.getresponse().read()
        conn.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(post, bodies))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--firings", type=int, default=2000)
    parser.add_argument("--empty-passes", type=int, default=20)
    args = parser.parse_args()
    disable_telemetry()
    rows = firings(args.firings)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Warm-up: the process's one DuckDB (the Delta extension loads once) and imports.
        with WebhookSink() as sink:
            warm, warm_triggers = prepare(root, "warm-up", rows[:10], sink.url)
            deliver_all(warm, warm_triggers, 10)
        with WebhookSink() as sink:
            settings, triggers = prepare(root, "clean", rows, sink.url)
            clean, _ = deliver_all(settings, triggers, len(rows))
        with WebhookSink() as sink:
            baseline = bare_posts(rows, sink.url)
        failures = ([503] + [200] * 4) * (len(rows) // 5)
        with WebhookSink(statuses=failures) as sink:
            failing_settings, failing_triggers = prepare(root, "failing", rows, sink.url)
            failing, passes = deliver_all(failing_settings, failing_triggers, len(rows))

        n = len(rows)
        print(f"bare http.client posts (baseline): {n / baseline:8.0f} firings/s")
        print(
            f"deliver, receiver always 200:      {n / clean:8.0f} firings/s   "
            f"ratio to the baseline {baseline / clean:.2f}"
        )
        print(
            f"deliver, 1 in 5 answered 503 once: {n / failing:8.0f} firings/s   "
            f"({passes} passes) ratio to the failure-free run {clean / failing:.2f}"
        )

        # Idle cost, over the history just written (n firings, their delivery rows).
        scans, memo = [], []
        for _ in range(args.empty_passes):
            delivery.state.QUIET.clear()
            started = time.perf_counter()
            assert delivery.deliver_pass(settings, triggers_path=triggers, env=ENV).due == 0
            scans.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert delivery.deliver_pass(settings, triggers_path=triggers, env=ENV).due == 0
            memo.append(time.perf_counter() - started)
        scan, quiet = sorted(scans)[len(scans) // 2], sorted(memo)[len(memo) // 2]
        print(f"empty pass that scans both tables (baseline): {scan * 1000:7.1f} ms (median)")
        print(
            f"empty pass, nothing changed since the last:   {quiet * 1000:7.1f} ms (median)   "
            f"ratio {quiet / scan:.3f}"
        )


if __name__ == "__main__":
    main()
