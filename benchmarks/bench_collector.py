"""Collector throughput and latency under a real load generator, against yardsticks measured in
the same run.

``wrk`` (Debian's package, a C load generator; ``make bench`` installs it) drives each server
for a fixed time over keep-alive connections, with the Lua scripts in ``benchmarks/wrk/``:

- ``/v1/batch``: 100-event JSON bodies with the write key as the Basic-auth username, as the
  server-side Segment SDKs send them;
- ``/v1/t``: one ``text/plain`` track event per request with the ``writeKey`` in the body, as
  analytics-next sends events unbatched from a page; every request has its own messageId.

Three things are measured, at 1 and at 2 worker processes, for both shapes:

- ``lakepulse collect`` (auth, contract, privacy rules, quarantine, group commit, a 200 only
  once the landing file is fsync'd and renamed; the per-event work in the compiled pass of
  ``ingestion.contract``);
- the minimal durable collector (``benchmarks/minimal_collector.py``: uvicorn + orjson parse,
  append, fsync, 200; no auth, contract or privacy rules), served the same way;
- the append+fsync baseline: the same bodies appended to one file, fsync'd each, one process.

Both servers run side by side and their peak runs alternate (best of ``--rounds`` kept), so a
change in the shared host's load hits both. It prints each server's peak (events acknowledged
per second), ours / minimal, each server's CPU time an acknowledged event (the minimal
collector is bound by fsync latency when the disk is slow and by CPU when it is fast, so the
peak ratio swings with the disk; the CPU ratio does not), and the p99 latency of requests at
80 % of our measured peak. It ends with each target of issue 29, met or MISSED: the peak
ratio >= 0.7 on both routes at each worker count, CPU an event on ``/v1/batch`` at most 1.5x
the minimal collector's, p99 <= 50 ms at 80 % of peak.
wrk has no rate option and Debian has no wrk2, so the paced run spaces requests with wrk's
``delay()`` hook (``benchmarks/wrk/bench.lua`` says how); the rate it achieved is printed
next to the p99. Without wrk the lean Python client
below stands in (peaks only: it shares the cores it measures and caps near 86 k events/s).

    python -m benchmarks.bench_collector                         # ~2.5 minutes
    python -m benchmarks.bench_collector --duration 8 --rounds 3 # steadier, ~6 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import orjson
import psutil
import uvloop

from benchmarks.bench_freshness import tree_usage
from ingestion.tenants import TenantRegistry
from lakepulse.core.settings import PROJECT_ROOT, Settings
from lakepulse.demo.simulator import SimConfig, TrafficGenerator
from lakepulse.demo.supervisor import wait_http

BATCH = 100
WRK_DIR = Path(__file__).parent / "wrk"
MESSAGE_ID_SLOT = "@MESSAGE_ID@"
"""Where ``single.lua`` puts each request's own messageId."""


@dataclass(frozen=True)
class Shape:
    """One kind of traffic: the route, the events a request carries and the wrk script."""

    name: str
    route: str
    per_request: int
    script: str
    connections: int


SHAPES = (
    Shape("batch", "/v1/batch", BATCH, "batch.lua", 8),
    Shape("single", "/v1/t", 1, "single.lua", 16),
)


@dataclass
class Run:
    """What one load run measured: events acknowledged per second and latency (ms)."""

    events_per_s: float
    requests_per_s: float
    p99_ms: float | None = None
    failed: int = 0
    cpu_us_per_event: float | None = None
    """CPU time (user + system, every process of the server) an acknowledged event: what the
    server spends, whatever the shared host's load or the disk's fsync latency that moment."""


def _messages(events: int) -> list[dict]:
    gen = TrafficGenerator(SimConfig(seed=5, tenants={"acme": "k"}))
    return [m for _, _, m in islice(gen.events(), events)]


def bodies(events: int) -> list[bytes]:
    messages = _messages(events)
    return [
        orjson.dumps({"batch": messages[i : i + BATCH]}) for i in range(0, len(messages), BATCH)
    ]


def browser_bodies(events: int, key: str, message_id: str | None = None) -> list[bytes]:
    """One track event per body with its ``writeKey``, as analytics-next posts to ``/v1/t``;
    ``message_id`` replaces each event's own (the wrk script's slot)."""
    return [
        orjson.dumps({**m, "writeKey": key, **({"messageId": message_id} if message_id else {})})
        for m in _messages(events)
        if m["type"] == "track"
    ]


def free_port() -> int:
    """A port nothing listens on now (other agents run collectors on this machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def baseline(path: Path, chunks: list[bytes], seconds: float, per_request: int) -> float:
    """Events/s when the bodies are appended to one file and fsync'd each, for ``seconds``."""
    done, started = 0, time.perf_counter()
    with open(path, "ab") as fh:
        while time.perf_counter() - started < seconds:
            fh.write(chunks[done % len(chunks)] + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
            done += 1
    return done * per_request / (time.perf_counter() - started)


def run_wrk(
    url: str, shape: Shape, files: dict[str, Path], auth: str, seconds: float, rate: float = 0
) -> Run:
    """One wrk run (one thread) of ``shape``; ``rate`` requests/s paces it (0: flat out)."""
    args = [str(files[shape.name])]
    if shape.name == "batch":
        args.append(auth)
    args.append(f"{rate:.1f}")
    command = [
        "wrk",
        "-t1",
        f"-c{shape.connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        shape.script,
        url,
        "--",
        *args,
    ]
    out = subprocess.run(command, cwd=WRK_DIR, capture_output=True, text=True, check=True).stdout
    line = next((x for x in out.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    stats = orjson.loads(line.removeprefix("BENCH "))
    seconds_run = stats["duration_us"] / 1e6
    acknowledged = stats["requests"] - stats["status_errors"]
    return Run(
        events_per_s=acknowledged * shape.per_request / seconds_run,
        requests_per_s=acknowledged / seconds_run,
        p99_ms=stats["p99_us"] / 1000,
        failed=stats["status_errors"] + stats["socket_errors"],
    )


async def _client_proc(
    url: str, key: str, chunk: list[bytes], concurrency: int, route: str, per_request: int
) -> int:
    """The fallback load generator when wrk is absent: pre-encoded requests on keep-alive
    connections, so the clients (which share the cores with the server) cost little."""
    host, port = url.removeprefix("http://").split(":")
    auth = base64.b64encode(f"{key}:".encode()).decode()
    requests = [
        (
            f"POST {route} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Type: {'application/json' if per_request > 1 else 'text/plain'}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in chunk
    ]
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while requests:
                writer.write(requests.pop())
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                if status == 200:
                    accepted += per_request
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted


def _run_client(args: tuple) -> int:
    return uvloop.run(_client_proc(*args))


def run_python_client(url: str, key: str, shape: Shape, chunks: list[bytes]) -> Run:
    """Send every chunk from two client processes; peak only (no pacing, no percentiles)."""
    half = -(-len(chunks) // 2)
    jobs = [
        (
            url,
            key,
            chunks[i * half : (i + 1) * half],
            shape.connections // 2 or 1,
            shape.route,
            shape.per_request,
        )
        for i in range(2)
    ]
    started = time.perf_counter()
    with mp.get_context("spawn").Pool(2) as pool:
        accepted = sum(pool.map(_run_client, jobs))
    elapsed = time.perf_counter() - started
    sent = len(chunks) * shape.per_request
    return Run(accepted / elapsed, accepted / shape.per_request / elapsed, failed=sent - accepted)


class Server:
    """A collector process on a free port, stopped (SIGTERM) when the block ends."""

    def __init__(self, command: list[str], env: dict[str, str], port: int):
        self.command, self.env, self.url = command, env, f"http://127.0.0.1:{port}"

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(self.command, env=self.env, cwd=PROJECT_ROOT)
        if not wait_http(f"{self.url}/health", 60):
            self.process.kill()
            raise RuntimeError(f"{' '.join(self.command)} did not answer on {self.url} in 60 s")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.process.terminate()
        self.process.wait()

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the server and its worker processes."""
        return tree_usage(psutil.Process(self.process.pid))[0]


def ours(home: Path, workers: int) -> Server:
    port = free_port()
    settings = Settings.from_env(
        {"LAKEPULSE_HOME": str(home), "LAKEPULSE_COLLECTOR_PORT": str(port)}
    )
    command = [sys.executable, "-m", "lakepulse.cli", "collect", "--workers", str(workers)]
    return Server(command, settings.process_env(), port)


def minimal(out_dir: Path, workers: int) -> Server:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "benchmarks.minimal_collector:create_app",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
        "--lifespan",
        "off",
    ]
    return Server(command, {**os.environ, "MINIMAL_COLLECTOR_DIR": str(out_dir)}, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds a measurement")
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating peak runs per server (best kept)"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--events", type=int, default=20_000, help="distinct events sent")
    parser.add_argument(
        "--python-client", action="store_true", help="use the Python fallback even if wrk exists"
    )
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    seconds = int(max(1, args.duration))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        Settings.from_env({"LAKEPULSE_HOME": str(home)}).ensure_dirs()
        key = TenantRegistry(home / "tenants.json").add("acme")
        auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        chunks = {"batch": bodies(args.events), "single": browser_bodies(args.events, key)}
        files = {"batch": tmp / "batch.txt", "single": tmp / "single.txt"}
        files["batch"].write_bytes(b"\n".join(chunks["batch"]) + b"\n")
        files["single"].write_bytes(
            b"\n".join(browser_bodies(args.events, key, MESSAGE_ID_SLOT)) + b"\n"
        )
        base = {
            shape.name: baseline(
                tmp / f"baseline-{shape.name}.ndjson",
                chunks[shape.name],
                min(3.0, seconds),
                shape.per_request,
            )
            for shape in SHAPES
        }

        def peak(server: Server, shape: Shape) -> Run:
            cpu_before = server.cpu_seconds()
            if not use_wrk:
                run = run_python_client(server.url, key, shape, chunks[shape.name])
                elapsed = len(chunks[shape.name]) * shape.per_request / max(run.events_per_s, 1)
            else:
                run, elapsed = run_wrk(server.url, shape, files, auth, seconds), seconds
            events = run.events_per_s * elapsed
            run.cpu_us_per_event = (server.cpu_seconds() - cpu_before) / max(events, 1) * 1e6
            return run

        results: dict[tuple[int, str], dict[str, tuple[Run, Run | None]]] = {}
        for workers in args.workers:
            with minimal(tmp, workers) as theirs, ours(home, workers) as mine:
                for shape in SHAPES:
                    if use_wrk:  # warm-up: connections, caches
                        for server in (theirs, mine):
                            run_wrk(server.url, shape, files, auth, 1)
                    # Alternating rounds, the best of each kept: the shared host's load moves
                    # within seconds, and the ratio should not depend on which ran first.
                    runs: dict[str, list[Run]] = {"minimal": [], "ours": []}
                    for _ in range(args.rounds):
                        runs["minimal"].append(peak(theirs, shape))
                        runs["ours"].append(peak(mine, shape))
                    best = {
                        name: max(r, key=lambda run: run.events_per_s) for name, r in runs.items()
                    }
                    paced = (
                        run_wrk(
                            mine.url, shape, files, auth, seconds, 0.8 * best["ours"].requests_per_s
                        )
                        if use_wrk
                        else None
                    )
                    results[(workers, shape.name)] = {
                        "minimal": (best["minimal"], None),
                        "ours": (best["ours"], paced),
                    }
    load = os.getloadavg()
    print(
        f"collector benchmark: {'wrk, 1 thread' if use_wrk else 'Python client (no wrk)'}, "
        f"best of {args.rounds} alternating {seconds} s runs; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    print(
        f"  {'workers':>7} {'shape':<22} {'ours ev/s':>10} {'minimal ev/s':>12} {'ratio':>6} "
        f"{'baseline ev/s':>13}  {'CPU us/event ours / minimal':>28}  "
        "p99 at 80 % of our peak (achieved)"
    )
    for (workers, shape_name), runs in results.items():
        shape = next(s for s in SHAPES if s.name == shape_name)
        (ours_peak, ours_paced), (min_peak, _) = runs["ours"], runs["minimal"]
        label = f"{shape.route} x{shape.per_request}, {shape.connections} conn"
        latency = (
            f"{ours_paced.p99_ms:6.1f} ms ({ours_paced.events_per_s:,.0f} ev/s)"
            if ours_paced and ours_paced.p99_ms is not None
            else "n/a"
        )
        failed = sum(run.failed for run in (ours_peak, min_peak, ours_paced) if run)
        cpu_ours, cpu_min = ours_peak.cpu_us_per_event or 0, min_peak.cpu_us_per_event or 0
        cpu = f"{cpu_ours:.1f} / {cpu_min:.1f} ({cpu_min / max(cpu_ours, 1e-9):.2f})"
        print(
            f"  {workers:>7} {label:<22} {ours_peak.events_per_s:>10,.0f} "
            f"{min_peak.events_per_s:>12,.0f} {ours_peak.events_per_s / min_peak.events_per_s:>6.2f} "
            f"{base[shape_name]:>13,.0f}  {cpu:>28}  {latency}"
            + (f"  ({failed} requests failed)" if failed else "")
        )
    print(
        "  CPU us/event: server CPU time an acknowledged event in the peak run kept; in brackets"
        " minimal / ours, the ratio the peaks would show if both were bound by CPU alone"
    )
    print("targets (issue 29):")
    for line in target_lines(results):
        print(f"  {line}")


TARGET_RATIO = 0.7
"""Events acknowledged a second, ours / the minimal collector's, same workers and shape."""
TARGET_CPU = 1.5
"""CPU time an acknowledged event on /v1/batch, ours / the minimal collector's, at most."""
TARGET_P99_MS = 50.0
"""p99 latency at 80 % of our peak, at most."""


def target_lines(results: dict[tuple[int, str], dict[str, tuple[Run, Run | None]]]) -> list[str]:
    """One line a target and measurement, each saying met or MISSED."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    lines = []
    for (workers, shape_name), runs in results.items():
        (ours_peak, ours_paced), (min_peak, _) = runs["ours"], runs["minimal"]
        route = next(s.route for s in SHAPES if s.name == shape_name)
        ratio = ours_peak.events_per_s / max(min_peak.events_per_s, 1e-9)
        lines.append(
            f"{route} at {workers} worker(s): ratio {ratio:.2f} >= {TARGET_RATIO}: "
            f"{verdict(ratio >= TARGET_RATIO)}"
        )
        if shape_name == "batch" and ours_peak.cpu_us_per_event and min_peak.cpu_us_per_event:
            cpu = ours_peak.cpu_us_per_event / min_peak.cpu_us_per_event
            lines.append(
                f"{route} at {workers} worker(s): CPU an event {cpu:.2f}x the minimal's "
                f"<= {TARGET_CPU}x: {verdict(cpu <= TARGET_CPU)}"
            )
        if ours_paced is None or ours_paced.p99_ms is None:
            lines.append(f"{route} at {workers} worker(s): p99 not measured (no wrk)")
        else:
            lines.append(
                f"{route} at {workers} worker(s): p99 {ours_paced.p99_ms:.1f} ms at 80 % of "
                f"peak <= {TARGET_P99_MS:.0f} ms: {verdict(ours_paced.p99_ms <= TARGET_P99_MS)}"
            )
    return lines


if __name__ == "__main__":
    main()
