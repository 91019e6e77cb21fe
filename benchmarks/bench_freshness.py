"""Freshness of the whole loop: `lakepulse demo` (collector, simulator at 1,000 events/s,
Dagster daemon with the 60 s sensor, dbt, publish) runs for a few minutes, and for every event
we measure the delay from its acceptance by the collector (`received_at`) to the moment the
marts that include it, `mart_conversion_windows` among them, are readable (the read replica is
swapped in after each build). Target: p95 at most 90 s.

Baseline in the same run: the bound the design allows, the 60 s sensor interval plus the mean
duration of one pipeline run; the ratio p95 / bound says how much waiting adds on top.

    python -m benchmarks.bench_freshness --minutes 6 --rate 1000
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from lakepulse.core.duck import connect
from lakepulse.core.settings import PROJECT_ROOT, Settings, disable_telemetry
from lakepulse.warehouse.postgres import free_port

SENSOR_INTERVAL_S = 60


def tree_usage(root: psutil.Process) -> tuple[float, int]:
    """CPU seconds (user + system) and resident memory of a process and its children."""
    cpu, rss = 0.0, 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            cpu += times.user + times.system + times.children_user + times.children_system
            rss += proc.memory_info().rss
        except psutil.Error:
            pass
    return cpu, rss


def new_delays(settings: Settings, after_loaded_us: int, visible_at: float):
    """Delays of the events loaded since the previous build, now visible in the marts."""
    conn = connect()
    try:
        rows = conn.execute(
            f"select epoch_us(loaded_at), epoch_us(received_at) from delta_scan('{settings.bronze_events_path}') "
            "where epoch_us(loaded_at) > ?",
            [after_loaded_us],
        ).fetchall()
    finally:
        conn.close()
    if not rows:
        return [], after_loaded_us
    delays = [visible_at - received / 1e6 for _, received in rows]
    return delays, max(loaded for loaded, _ in rows)


def run_durations(settings: Settings) -> list[float]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        records = instance.get_run_records(
            dg.RunsFilter(job_name="ingest_and_build", statuses=[dg.DagsterRunStatus.SUCCESS])
        )
        return [r.end_time - r.start_time for r in records if r.end_time and r.start_time]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    disable_telemetry()
    home = Path(tempfile.mkdtemp(prefix="lakepulse-fresh-"))
    env = {
        **os.environ,
        "LAKEPULSE_HOME": str(home),
        "LAKEPULSE_COLLECTOR_PORT": str(free_port()),
        "LAKEPULSE_DAGSTER_PORT": str(free_port()),
        "LAKEPULSE_PG_PORT": str(free_port()),
    }
    env.pop("DAGSTER_HOME", None)
    env.pop("LAKEPULSE_PG_URL", None)
    settings = Settings.from_env(env)
    demo = subprocess.Popen(
        [sys.executable, "-m", "lakepulse.cli", "demo", "--rate", str(args.rate)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    root = psutil.Process(demo.pid)
    delays: list[float] = []
    last_loaded, last_mtime = 0, 0.0
    peak_rss, started = 0, time.monotonic()
    cpu_start, _ = tree_usage(root)
    replica = settings.replica_path
    try:
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(1)
            _, rss = tree_usage(root)
            peak_rss = max(peak_rss, rss)
            if replica.exists() and replica.stat().st_mtime != last_mtime:
                last_mtime = replica.stat().st_mtime
                fresh, last_loaded = new_delays(settings, last_loaded, last_mtime)
                delays += fresh
                if fresh:
                    print(
                        f"  build visible: {len(fresh):>7} events, delay p50 "
                        f"{np.percentile(fresh, 50):5.1f} s, max {max(fresh):5.1f} s",
                        flush=True,
                    )
        cpu_end, _ = tree_usage(root)
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
    elapsed = time.monotonic() - started
    if not delays:
        print("no build became visible: is the demo starting? see logs in", home / "logs")
        sys.exit(1)
    durations = run_durations(settings)
    bound = SENSOR_INTERVAL_S + (float(np.mean(durations)) if durations else 0.0)
    p50, p95 = np.percentile(delays, 50), np.percentile(delays, 95)
    print(
        f"freshness at {args.rate:.0f} events/s over {elapsed / 60:.1f} min "
        f"({len(delays)} events): p50 {p50:.1f} s, p95 {p95:.1f} s, max {max(delays):.1f} s "
        f"(target p95 <= 90 s)"
    )
    print(
        f"pipeline runs: {len(durations)}, mean {np.mean(durations):.1f} s; "
        f"bound = 60 s sensor + mean run = {bound:.1f} s; ratio p95 / bound = {p95 / bound:.2f}"
    )
    print(
        f"resources: {(cpu_end - cpu_start) / elapsed:.2f} CPU cores on average (of "
        f"{psutil.cpu_count()}), peak RSS {peak_rss / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
