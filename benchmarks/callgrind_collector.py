"""Instructions a 100-event ``/v1/batch`` request costs in process, counted by callgrind
(deterministic whatever the shared host's load, one core): the collector's request path
(``read_request``, the tenant, ``accept``, ``intake.encode`` and the answer's JSON) against
the minimal collector's (``orjson.loads`` and the line it appends). No HTTP, no fsync:
``bench_collector`` measures those, under wrk.

Each figure is what callgrind counts while ``--requests`` requests run, after a warm-up (and
not the start-up, imports and warm-up), divided by ``--requests``.

    python -m benchmarks.callgrind_collector                 # ~30 s
    python -m benchmarks.callgrind_collector --requests 200  # steadier
    python -m benchmarks.callgrind_collector --run ours 100  # one run, no valgrind
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import deque
from datetime import UTC, datetime
from itertools import starmap

import orjson

WARMUP = 40
TOTAL = re.compile(rb"^summary:\s+(\d+)", re.MULTILINE)


def run(path: str, requests: int) -> None:
    """``requests`` requests through ``path`` (ours or minimal), after ``WARMUP`` of them."""
    from benchmarks.bench_collector import bodies
    from ingestion.collector.routes import write_key_from
    from ingestion.intake import accept, encode, read_request
    from ingestion.tenants import Tenant

    chunks = bodies(2_000)
    tenant = Tenant("acme", bytes(range(32)))
    headers = {b"authorization": b"Basic azo="}

    def ours(raw: bytes) -> None:
        submission = read_request(raw, True)
        assert write_key_from(headers, {"writeKey": submission.write_key}) == "k"
        checked = accept(submission, tenant, datetime.now(UTC))
        assert checked.compiled == len(checked.good)
        encode(tenant.tenant_id, checked.good, checked.bad)
        orjson.dumps({"success": True})

    def minimal(raw: bytes) -> None:
        orjson.loads(raw)
        raw + b"\n"

    handle = ours if path == "ours" else minimal
    for index in range(WARMUP):
        handle(chunks[index % len(chunks)])
    # Counted: what runs inside itertools.starmap (callgrind's --toggle-collect=starmap_next),
    # which nothing on either path calls.
    measured = [(chunks[index % len(chunks)],) for index in range(requests)]
    deque(starmap(handle, measured), maxlen=0)


def count(path: str, requests: int) -> int:
    """The instructions callgrind counts while ``requests`` requests run (after the warm-up)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "callgrind.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--collect-atstart=no",
                "--toggle-collect=starmap_next",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "benchmarks.callgrind_collector",
                "--run",
                path,
                str(requests),
            ],
            check=True,
            capture_output=True,
            # the same dict and set layouts each run; no BLAS threads spinning meanwhile
            env={**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"},
        )
        with open(out, "rb") as fh:
            found = TOTAL.search(fh.read())
        assert found, "no summary line in callgrind's output"
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--run", nargs=2, metavar=("PATH", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run(args.run[0], int(args.run[1]))
        return
    for path in ("ours", "minimal"):
        per_request = count(path, args.requests) / args.requests
        print(f"{path:8s} {per_request / 1e6:.3f} M instructions a 100-event request")


if __name__ == "__main__":
    main()
