"""Collector throughput: events/s accepted *and durably stored* (200 OK after fsync), batched
requests from concurrent clients, against a baseline measured in the same run: the same
request bodies appended to one file and fsync'd per batch by a single process (no HTTP, no
validation, no privacy rules).

The browser routes are measured the same way: one event per request, ``text/plain`` with the
write key in the body, to ``/v1/t`` (what analytics-next sends without batching), against the
same baseline per request (one append + fsync per event).

    python -m benchmarks.bench_collector --events 200000 --clients 32
    python -m benchmarks.bench_collector --quick     # a short run for figures
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import orjson
import uvloop

from ingestion.tenants import TenantRegistry
from lakepulse.core.settings import PROJECT_ROOT, Settings
from lakepulse.demo.simulator import SimConfig, TrafficGenerator
from lakepulse.demo.supervisor import wait_http

BATCH = 100


def _messages(events: int) -> list[dict]:
    gen = TrafficGenerator(SimConfig(seed=5, tenants={"acme": "k"}))
    return [m for _, _, m in islice(gen.events(), events)]


def bodies(events: int) -> list[bytes]:
    messages = _messages(events)
    return [
        orjson.dumps({"batch": messages[i : i + BATCH]}) for i in range(0, len(messages), BATCH)
    ]


def browser_bodies(events: int, key: str) -> list[bytes]:
    """One event per body with its ``writeKey``, as analytics-next posts to ``/v1/t``."""
    return [orjson.dumps({**m, "writeKey": key}) for m in _messages(events) if m["type"] == "track"]


async def _client_proc(
    url: str, key: str, chunk: list[bytes], concurrency: int, route: str, per_request: int
) -> int:
    """A lean HTTP/1.1 load generator: pre-encoded requests on keep-alive connections, so
    the clients (which share this machine's cores with the collector) cost little per
    request, as wrk or a fleet of SDKs on other machines would."""
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


def baseline(path: Path, chunks: list[bytes]) -> float:
    started = time.perf_counter()
    with open(path, "ab") as fh:
        for body in chunks:
            fh.write(body + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
    return time.perf_counter() - started


def _measure(
    command: list[str],
    env: dict,
    url: str,
    key: str,
    chunks: list[bytes],
    args,
    route: str = "/v1/batch",
    per_request: int = BATCH,
) -> tuple[float, int]:
    """Serve ``command``, send every chunk from the client processes; (seconds, acknowledged)."""
    server = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT)
    try:
        if not wait_http(f"{url}/health", 30):
            raise RuntimeError(f"{' '.join(command)} did not answer on {url} within 30 s")
        per = -(-len(chunks) // args.client_procs)
        jobs = [
            (
                url,
                key,
                chunks[i * per : (i + 1) * per],
                max(1, args.clients // args.client_procs),
                route,
                per_request,
            )
            for i in range(args.client_procs)
        ]
        started = time.perf_counter()
        with mp.get_context("spawn").Pool(args.client_procs) as pool:
            accepted = sum(pool.map(_run_client, jobs))
        return time.perf_counter() - started, accepted
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections in all")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="collector worker processes")
    parser.add_argument(
        "--browser-events", type=int, default=20_000, help="single events sent to /v1/t"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short run: 20000 batched, 5000 single events"
    )
    args = parser.parse_args()
    if args.quick:
        args.events, args.browser_events = 20_000, 5_000
    chunks = bodies(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"LAKEPULSE_HOME": tmp, "LAKEPULSE_COLLECTOR_PORT": "18088"})
        settings.ensure_dirs()
        key = TenantRegistry(settings.tenants_file).add("acme")
        base = baseline(Path(tmp) / "baseline.ndjson", chunks)
        singles = browser_bodies(args.browser_events, key)
        single_base = baseline(Path(tmp) / "baseline-single.ndjson", singles)
        collect = [sys.executable, "-m", "lakepulse.cli", "collect", "--workers", str(args.workers)]
        ours, accepted = _measure(
            collect, settings.process_env(), settings.collector_url, key, chunks, args
        )
        browser, browser_accepted = _measure(
            collect,
            settings.process_env(),
            settings.collector_url,
            key,
            singles,
            args,
            route="/v1/t",
            per_request=1,
        )
        port = settings.collector_port + 1
        minimal, minimal_accepted = _measure(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "benchmarks.minimal_collector:create_app",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
                "--no-access-log",
                "--lifespan",
                "off",
            ],
            {**os.environ, "MINIMAL_COLLECTOR_DIR": tmp},
            f"http://127.0.0.1:{port}",
            key,
            chunks,
            args,
        )
    total = len(chunks) * BATCH
    print(
        f"collector benchmark: {total} events in batches of {BATCH}, {args.clients} concurrent "
        f"connections from {args.client_procs} client processes, {args.workers} collector workers"
    )
    print(
        f"  lakepulse collector    {ours:7.2f} s  {accepted / ours:10.0f} events/s stored ({accepted} acknowledged)"
    )
    print(
        f"  minimal collector      {minimal:7.2f} s  {minimal_accepted / minimal:10.0f} events/s"
        "  (uvicorn, parse + append + fsync per request: no auth, contract or privacy rules)"
    )
    print(f"  append+fsync baseline  {base:7.2f} s  {total / base:10.0f} events/s")
    print(
        f"  ratio (ours / baseline): {(accepted / ours) / (total / base):.2f}   targets: >= 100000 events/s and ratio >= 0.5"
    )
    print(
        f"browser route: {len(singles)} single text/plain track events to /v1/t (analytics-next "
        "unbatched), same clients and workers"
    )
    print(
        f"  lakepulse /v1/t        {browser:7.2f} s  {browser_accepted / browser:10.0f} events/s stored ({browser_accepted} acknowledged)"
    )
    print(
        f"  append+fsync per event {single_base:7.2f} s  {len(singles) / single_base:10.0f} events/s"
    )
    print(
        f"  ratio (/v1/t / per-event baseline): {(browser_accepted / browser) / (len(singles) / single_base):.2f}"
        f"   (/v1/t / /v1/batch: {(browser_accepted / browser) / (accepted / ours):.3f})"
    )


if __name__ == "__main__":
    main()
