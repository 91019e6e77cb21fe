"""Freshness where BI reads: `lakepulse demo` (collector, simulator at ``--rate`` events/s,
Dagster daemon and its landing sensor, load, checks, dbt, publish to PostgreSQL) runs for a few
minutes while a probe sends a uniquely named track event every ``--probe-every`` seconds. For
every probe we record the moment the collector acknowledged it, the moment it first shows in
the read replica's ``marts.mart_event_volume`` (DuckDB, what `lakepulse sql`, the checks and
the publish read) and the moment a tenant's BI login first sees it in PostgreSQL
``marts.mart_event_volume`` (what Superset and Metabase read). Targets: p95 at PostgreSQL at
most 45 s (moonshot 30 s); at most 1 core on average for the loop; peak RSS under 3 GiB.

Where a probe's time went is read from the Dagster event log of the run that loaded it (the
first run whose load step started after the acknowledgement): waiting for a run to be requested
(the sensor), the queue (behind a run still going), launch (process start, imports, definitions),
load, checks (bronze and mart suites), dbt, triggers, publish, and the poll after it. Each
stage's share of the mean delay is printed.

Baseline in the same run: the bound the loop's design allows, one mean run after a full run
interval (a probe accepted just after a load started waits for that run and the next): the
ratio p95 / bound says how much waiting adds on top of the runs themselves.

History: ``--home DIR`` starts from a copy of a prepared data directory, e.g. one kept by
``python -m benchmarks.bench_incremental --sizes 10000000 --keep`` (10 M events, fully built);
the first publish (every mart copied to an empty PostgreSQL) is warm-up and not measured.

    python -m benchmarks.bench_freshness --minutes 5 --rate 1000
    python -m benchmarks.bench_freshness --minutes 5 --rate 1000 --home /tmp/kept-10m
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import httpx
import numpy as np
import psutil
import psycopg

from lakepulse.core.duck import connect
from lakepulse.core.settings import PROJECT_ROOT, Settings, disable_telemetry
from lakepulse.demo.supervisor import DEMO_TENANTS
from lakepulse.warehouse.postgres import free_port

PROBES_FILE = "freshness_probes.json"
PROBE_TENANT = "acme"
PROBE_PREFIX = "freshness probe "
TARGET_P95_S = 45.0
STAGES = ("sensor", "queue", "launch", "load", "checks", "dbt", "triggers", "publish", "poll")
STEP_STAGE = {
    "bronze_load": "load",
    "dbt_models": "dbt",
    "postgres__marts": "publish",
    "fire_triggers": "triggers",
}
"""Step keys of the minute job and the stage they count for; every other step is a check
(the suites, triggers.yml and its validity check)."""


def stage_of(step_key: str) -> str:
    return STEP_STAGE.get(step_key, "checks")


@dataclass
class Probe:
    name: str
    accepted_at: float
    replica_at: float | None = None
    postgres_at: float | None = None


@dataclass
class RunTimeline:
    """One run of the minute job, in wall-clock seconds."""

    created: float
    dequeued: float | None
    """When the queue let the run go (its RUN_STARTING event): the launch begins."""
    started: float | None
    steps: list[tuple[str, float, float]] = field(default_factory=list)
    """(stage, start, end) of each step, in order."""

    @property
    def load_started(self) -> float | None:
        return next((start for stage, start, _ in self.steps if stage == "load"), None)

    def segments(self) -> list[tuple[str, float, float]]:
        """Contiguous stages from the run's creation to its last step's end."""
        out = []
        first_step = self.steps[0][1] if self.steps else None
        if self.dequeued is not None:
            out.append(("queue", self.created, self.dequeued))
        if first_step is not None:
            out.append(("launch", self.dequeued or self.created, first_step))
        previous_end = first_step
        for stage, start, end in self.steps:
            if previous_end is not None and start > previous_end:
                out.append(("launch" if stage == "load" else "checks", previous_end, start))
            out.append((stage, start, end))
            previous_end = end
        return out

    @property
    def ended(self) -> float | None:
        return self.steps[-1][2] if self.steps else None


def tree_usage(root: psutil.Process, leave_out: tuple[str, ...] = ()) -> tuple[float, int]:
    """CPU seconds (user + system, children included) and resident memory of a process tree,
    without the processes whose command line mentions one of ``leave_out``."""
    cpu, rss = 0.0, 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            if leave_out and any(part in " ".join(proc.cmdline()) for part in leave_out):
                continue
            times = proc.cpu_times()
            cpu += times.user + times.system + times.children_user + times.children_system
            rss += proc.memory_info().rss
        except psutil.Error:
            pass
    return cpu, rss


def run_timelines(settings: Settings) -> list[RunTimeline]:
    """Every run of the minute job, from the Dagster event log."""
    import dagster as dg

    kinds = {
        dg.DagsterEventType.RUN_DEQUEUED,
        dg.DagsterEventType.RUN_STARTING,
        dg.DagsterEventType.RUN_START,
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
        dg.DagsterEventType.STEP_SKIPPED,
    }
    timelines = []
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="ingest_and_build"))
        for record in records:
            timeline = RunTimeline(record.create_timestamp.timestamp(), None, None)
            starts: dict[str, float] = {}
            for entry in instance.all_logs(record.dagster_run.run_id, of_type=kinds):
                kind = entry.dagster_event.event_type
                if kind in (dg.DagsterEventType.RUN_DEQUEUED, dg.DagsterEventType.RUN_STARTING):
                    timeline.dequeued = max(timeline.dequeued or 0.0, entry.timestamp)
                elif kind == dg.DagsterEventType.RUN_START:
                    timeline.started = entry.timestamp
                elif kind == dg.DagsterEventType.STEP_START:
                    starts[entry.step_key] = entry.timestamp
                elif entry.step_key in starts:
                    start = starts.pop(entry.step_key)
                    timeline.steps.append((stage_of(entry.step_key), start, entry.timestamp))
            timeline.steps.sort(key=lambda step: step[1])
            timelines.append(timeline)
    return sorted(timelines, key=lambda t: t.created)


def attribute(probe: Probe, visible_at: float, runs: list[RunTimeline]) -> dict[str, float] | None:
    """Seconds of the probe's delay spent in each stage, or None if no run explains it."""
    run = next(
        (r for r in runs if r.load_started is not None and r.load_started >= probe.accepted_at),
        None,
    )
    if run is None or run.ended is None:
        return None
    shares = dict.fromkeys(STAGES, 0.0)
    shares["sensor"] = max(0.0, min(run.created, visible_at) - probe.accepted_at)
    for stage, start, end in run.segments():
        shares[stage] += max(0.0, min(end, visible_at) - max(start, probe.accepted_at))
    shares["poll"] = max(0.0, visible_at - max(run.ended, probe.accepted_at))
    return shares


class Prober:
    """Sends a probe event every ``every`` seconds and polls both read surfaces for them."""

    def __init__(self, settings: Settings, pg_dsn: str, every: float) -> None:
        self.settings, self.pg_dsn, self.every = settings, pg_dsn, every
        self.probes: dict[str, Probe] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.measuring = False

    def send_forever(self) -> None:
        url = f"{self.settings.collector_url}/v1/track"
        with httpx.Client(auth=(DEMO_TENANTS[PROBE_TENANT], ""), timeout=10) as client:
            while not self.stopping.wait(self.every):
                name = PROBE_PREFIX + uuid.uuid4().hex[:12]
                body = {"event": name, "anonymousId": "freshness-probe", "messageId": name}
                try:
                    response = client.post(url, json=body)
                except httpx.HTTPError:
                    continue
                if response.status_code == 200 and self.measuring:
                    with self.lock:
                        self.probes[name] = Probe(name, time.time())

    def _seen(self, names: list[str], attribute_name: str, at: float) -> None:
        with self.lock:
            for name in names:
                probe = self.probes.get(name)
                if probe is not None and getattr(probe, attribute_name) is None:
                    setattr(probe, attribute_name, at)

    def poll_postgres_forever(self) -> None:
        query = "select event_name from marts.mart_event_volume where event_name like %s"
        while not self.stopping.wait(0.5):
            try:
                with psycopg.connect(self.pg_dsn, connect_timeout=5) as conn:
                    while not self.stopping.wait(0.5):
                        rows = conn.execute(query, [PROBE_PREFIX + "%"]).fetchall()
                        conn.rollback()  # a fresh snapshot each poll
                        self._seen([r[0] for r in rows], "postgres_at", time.time())
            except psycopg.Error:
                continue  # the table is not published yet, or the server restarts

    def poll_replica_forever(self) -> None:
        replica = self.settings.replica_path
        last = None
        while not self.stopping.wait(0.5):
            try:
                stamp = replica.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if stamp == last:
                continue
            seen_at = time.time()
            conn = connect()
            try:
                conn.execute(f"attach '{replica}' as wh (read_only)")
                rows = conn.execute(
                    "select event_name from wh.marts.mart_event_volume where event_name like ?",
                    [PROBE_PREFIX + "%"],
                ).fetchall()
            except duckdb.Error:  # swapped while opening: the next poll reads it
                continue
            finally:
                conn.close()
            last = stamp
            self._seen([r[0] for r in rows], "replica_at", seen_at)


def bi_dsn(settings: Settings, pg_port: int) -> str:
    logins = json.loads((settings.home / "postgres" / "bi_logins.json").read_text())
    login = logins[PROBE_TENANT]
    return (
        f"host=127.0.0.1 port={pg_port} dbname=postgres user={login['user']} "
        f"password={login['password']}"
    )


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(1)


def percentiles(values: list[float]) -> str:
    if not values:
        return "none visible"
    p50, p95 = np.percentile(values, 50), np.percentile(values, 95)
    return f"p50 {p50:5.1f} s, p95 {p95:5.1f} s, max {max(values):5.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0, help="measured minutes")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--probe-every", type=float, default=3.0)
    parser.add_argument("--home", type=Path, help="copy this data directory first (history)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--report", type=Path, help="only print the figures of a kept run")
    args = parser.parse_args()
    disable_telemetry()
    if args.report:
        settings = Settings.from_env({"LAKEPULSE_HOME": str(args.report)})
        report(settings, json.loads((args.report / PROBES_FILE).read_text()))
        return
    home = Path(tempfile.mkdtemp(prefix="lakepulse-fresh-"))
    if args.home:
        shutil.copytree(args.home, home, dirs_exist_ok=True, symlinks=True)
        for stale in ("dagster", "postgres", "logs", "run"):
            shutil.rmtree(home / stale, ignore_errors=True)
    pg_port = free_port()
    env = {
        **os.environ,
        "LAKEPULSE_HOME": str(home),
        "LAKEPULSE_COLLECTOR_PORT": str(free_port()),
        "LAKEPULSE_DAGSTER_PORT": str(free_port()),
        "LAKEPULSE_PG_PORT": str(pg_port),
        "LAKEPULSE_SINK_PORT": str(free_port()),
    }
    for inherited in ("DAGSTER_HOME", "LAKEPULSE_PG_URL"):
        env.pop(inherited, None)
    settings = Settings.from_env(env)
    demo = subprocess.Popen(
        [sys.executable, "-m", "lakepulse.cli", "demo", "--rate", str(args.rate), "--no-bi"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    root = psutil.Process(demo.pid)
    threads: list[threading.Thread] = []
    prober = None
    try:
        logins = settings.home / "postgres" / "bi_logins.json"
        wait_for(logins.exists, 300, "the demo's PostgreSQL and BI logins")
        prober = Prober(settings, bi_dsn(settings, pg_port), args.probe_every)
        for target in (prober.send_forever, prober.poll_postgres_forever):
            threads.append(threading.Thread(target=target, daemon=True))
        threads.append(threading.Thread(target=prober.poll_replica_forever, daemon=True))
        for thread in threads:
            thread.start()
        # Warm-up: the first run builds what the data directory lacks and copies every mart to
        # an empty PostgreSQL; measure from the first probe sent after it is visible there.
        print(f"data directory {home}; waiting for the first publish ...", flush=True)
        wait_for(_published(prober), 900, "the first publish")
        prober.measuring = True
        started = time.monotonic()
        cpu_start, _ = tree_usage(root, leave_out=("simulate",))
        whole_start, _ = tree_usage(root)
        peak_rss = 0
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(1)
            _, rss = tree_usage(root, leave_out=("simulate",))
            peak_rss = max(peak_rss, rss)
        cpu_end, _ = tree_usage(root, leave_out=("simulate",))
        whole_end, _ = tree_usage(root)
        elapsed = time.monotonic() - started
        # Let the last probes through (two runs at most) before stopping.
        prober.measuring = False
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not all(
            p.postgres_at and p.replica_at for p in list(prober.probes.values())
        ):
            time.sleep(1)
    finally:
        if prober is not None:
            prober.stopping.set()
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
    measured = {
        "rate": args.rate,
        "elapsed": elapsed,
        "loop_cpu": cpu_end - cpu_start,
        "whole_cpu": whole_end - whole_start,
        "peak_rss": peak_rss,
        "probes": [vars(p) for p in prober.probes.values()],
    }
    (home / PROBES_FILE).write_text(json.dumps(measured))
    report(settings, measured)
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)


def _published(prober: Prober):
    """Whether a probe (sent before measuring began) is already visible in PostgreSQL."""

    def check() -> bool:
        try:
            with psycopg.connect(prober.pg_dsn, connect_timeout=5) as conn:
                row = conn.execute(
                    "select count(*) from marts.mart_event_volume where event_name like %s",
                    [PROBE_PREFIX + "%"],
                ).fetchone()
                return bool(row and row[0])
        except psycopg.Error:
            return False

    return check


def report(settings: Settings, measured: dict) -> None:
    """Print the figures of a measurement (also: ``--report DIR`` on a kept data directory)."""
    probes = [Probe(**p) for p in measured["probes"]]
    elapsed, peak_rss = measured["elapsed"], measured["peak_rss"]
    loop_cpu, whole_cpu = measured["loop_cpu"], measured["whole_cpu"]
    at_pg = [p.postgres_at - p.accepted_at for p in probes if p.postgres_at]
    at_replica = [p.replica_at - p.accepted_at for p in probes if p.replica_at]
    lost = [p.name for p in probes if not p.postgres_at]
    runs = [r for r in run_timelines(settings) if r.ended]
    runs_measured = [
        r for r in runs if r.created >= min((p.accepted_at for p in probes), default=0)
    ]
    durations = [r.ended - (r.started or r.created) for r in runs_measured]
    print(
        f"freshness at {measured['rate']:.0f} events/s over {elapsed / 60:.1f} min, "
        f"{len(probes)} probes ({len(lost)} not seen in PostgreSQL):"
    )
    print(
        f"  at PostgreSQL marts (BI login): {percentiles(at_pg)}   (target p95 <= {TARGET_P95_S:.0f} s)"
    )
    print(f"  at the DuckDB replica:          {percentiles(at_replica)}")
    shares = [
        s for p in probes if p.postgres_at and (s := attribute(p, p.postgres_at, runs)) is not None
    ]
    if shares:
        mean = {stage: float(np.mean([s[stage] for s in shares])) for stage in STAGES}
        total = sum(mean.values())
        print(
            "  where a probe's time went (mean s, share): "
            + ", ".join(f"{k} {v:.1f} ({v / total:.0%})" for k, v in mean.items() if v >= 0.05)
        )
    if runs_measured and durations:
        gaps = np.diff([r.created for r in runs_measured]) if len(runs_measured) > 1 else [60.0]
        bound = float(np.mean(gaps)) + float(np.mean(durations))
        p95 = float(np.percentile(at_pg, 95)) if at_pg else float("nan")
        print(
            f"  runs: {len(runs_measured)}, one every {np.mean(gaps):.1f} s, each {np.mean(durations):.1f} s "
            f"(launch to last step); bound = interval + run = {bound:.1f} s; "
            f"ratio p95 / bound = {p95 / bound:.2f}"
        )
        per_stage: dict[str, list[float]] = {}
        for run in runs_measured:
            for stage, start, end in run.segments():
                per_stage.setdefault(stage, []).append(end - start)
        print(
            "  a run's stages (mean s): "
            + ", ".join(f"{k} {sum(v) / len(runs_measured):.1f}" for k, v in per_stage.items())
        )
    print(
        f"  resources: the loop (all but the simulator) {loop_cpu / elapsed:.2f} cores on average "
        f"(target <= 1; with the simulator {whole_cpu / elapsed:.2f}, of {psutil.cpu_count()}), "
        f"peak RSS {peak_rss / 2**30:.2f} GiB (target < 3)"
    )


if __name__ == "__main__":
    main()
