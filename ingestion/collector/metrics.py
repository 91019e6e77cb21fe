"""The collector's counters and ``/metrics``: each worker process counts its own requests and
publishes them to a file a second; ``/metrics`` sums the live workers' (whichever worker
answers), with the landing log's backlog and whether the compiled row pass is in use."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import orjson

from ingestion.contract import compiled_pass_in_use
from ingestion.landing import LandingLog, backlog, read_cursors
from lakepulse.core.settings import Settings

COUNTED = (
    "requests",
    "events_accepted",
    "events_rejected",
    "events_stored",
    "events_quarantined",
    "events_compiled",
)
"""The counters ``/metrics`` shows by name (``http_*`` ones are grouped under ``http_errors``)."""


class Metrics:
    """This worker's counters, their publication, and the ``/metrics`` payload."""

    def __init__(self, settings: Settings, landing: LandingLog):
        self.settings = settings
        self.landing = landing
        self.counters: Counter[str] = Counter()
        self.last_write: float | None = None
        """When this worker last made rows durable (``last_write_age_s``)."""

    def publish(self) -> None:
        """Each worker process publishes its counters; ``/metrics`` sums the live ones."""
        directory = self.settings.metrics_dir
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{os.getpid()}.tmp"
        tmp.write_bytes(orjson.dumps(dict(self.counters)))
        os.replace(tmp, directory / f"{os.getpid()}.json")

    def _all_counters(self) -> Counter[str]:
        total: Counter[str] = Counter(self.counters)
        directory = self.settings.metrics_dir
        for path in directory.glob("*.json") if directory.exists() else []:
            pid = int(path.stem)
            if pid == os.getpid():
                continue
            try:
                os.kill(pid, 0)
                total.update(orjson.loads(path.read_bytes()))
            except (ProcessLookupError, PermissionError, FileNotFoundError, orjson.JSONDecodeError):
                continue
        return total

    def payload(self) -> dict[str, Any]:
        counters = self._all_counters()
        return {
            **{key: counters.get(key, 0) for key in COUNTED},
            "http_errors": {k: v for k, v in counters.items() if k.startswith("http_")},
            "compiled_row_pass": compiled_pass_in_use(),
            "landing_backlog": backlog(
                self.landing, read_cursors(self.settings.loader_state_path, "events")
            ),
            "last_write_age_s": None
            if self.last_write is None
            else round(time.time() - self.last_write, 3),
        }
