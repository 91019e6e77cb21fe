"""The collector's per-event work in process, µs an event: the C extension ``ingestion._rowpass``
against the same source interpreted (``ingestion.rowpass``), measured in the same run.

The bodies are ``bench_collector``'s: the simulator's traffic in 100-event ``/v1/batch``
bodies. Two figures for each build, each the minimum over ``--repeat`` timed rounds (the two
builds' rounds alternate, so a change in the shared host's load hits both):

- *request*: what the collector does with a body before the landing write: the envelope
  decode (``decode_request``), ``check_events`` (each event's decode, contract, privacy rules,
  row) and the landing file's encoding (``encode_lines``);
- *row pass*: ``rows`` alone (each event's decode and row), the part the extension compiles.

No HTTP, no fsync: ``bench_collector`` measures those, under wrk.

    python -m benchmarks.bench_rowpass                 # ~20 s
    python -m benchmarks.bench_rowpass --repeat 100    # steadier
"""

from __future__ import annotations

import argparse
import importlib
import time
from datetime import UTC, datetime
from types import ModuleType

from benchmarks.bench_collector import bodies
from ingestion import contract, rowpass
from ingestion.contract import Batch, check_events, decode_request
from ingestion.landing import _ENCODER

SECRET = bytes(range(32))


def request_work(body: bytes) -> None:
    """A ``/v1/batch`` body as ``Collector.ingest`` handles it, up to the landing write."""
    request = decode_request(body, batched=True)
    assert request is not None
    checked = check_events(
        request.events,
        tenant_id="acme",
        secret=SECRET,
        received_at=datetime.now(UTC),
        batch_context=request.context,
        batch_sent_at=request.sent_at,
        default_type=None,
        body_bytes=len(body),
        compiled=True,
    )
    assert checked.compiled == len(request.events)
    _ENCODER.encode_lines(checked.good)


def measure(builds: dict[str, ModuleType], chunks: list[bytes], repeat: int) -> dict:
    """Per build, the fastest round of each figure, in µs an event."""
    events = sum(len(decode_request(b, batched=True).events) for b in chunks)
    requests = [decode_request(b, batched=True) for b in chunks]
    batch = Batch("acme", SECRET, datetime.now(UTC))
    best: dict[str, dict[str, float]] = {name: {} for name in builds}
    for _ in range(repeat):
        for name, module in builds.items():
            contract._ROW_PASS = module
            started = time.perf_counter()
            for body in chunks:
                request_work(body)
            request_us = (time.perf_counter() - started) / events * 1e6
            started = time.perf_counter()
            for request in requests:
                module.rows(request.events, batch)
            rows_us = (time.perf_counter() - started) / events * 1e6
            figures = best[name]
            figures["request"] = min(figures.get("request", request_us), request_us)
            figures["row pass"] = min(figures.get("row pass", rows_us), rows_us)
    contract._ROW_PASS = None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2_000, help="events in the bodies")
    parser.add_argument("--repeat", type=int, default=40, help="timed rounds of each build")
    args = parser.parse_args()
    chunks = bodies(args.events)
    builds = {
        "extension": importlib.import_module("ingestion._rowpass"),
        "interpreted": rowpass,
    }
    for module in builds.values():  # warm: caches (URLs, user agents, rule-free keys)
        contract._ROW_PASS = module
        for body in chunks:
            request_work(body)
    best = measure(builds, chunks, args.repeat)
    print(
        f"per-event work in process, {args.events} events in {len(chunks)} bodies of 100, "
        f"min of {args.repeat} rounds (µs an event):"
    )
    for figure in ("request", "row pass"):
        ours, theirs = best["extension"][figure], best["interpreted"][figure]
        print(
            f"  {figure:9s} extension {ours:5.2f}  interpreted {theirs:5.2f}  "
            f"ratio {ours / theirs:.2f}"
        )


if __name__ == "__main__":
    main()
