"""Segment-compatible HTTP collector, one module a concern: ``routes`` (the ASGI application:
routing, authentication, durability before the answer), ``project_settings`` (what browser
SDKs load at start), ``group_commit`` (requests sharing write rounds) and ``metrics``
(counters and ``/metrics``). The events go through ``ingestion.intake``, the one way into the
lake."""

from __future__ import annotations

import functools
import os

from ingestion.collector.group_commit import WRITER_ENV, SharedWriter
from ingestion.collector.routes import Collector
from ingestion.intake import land_encoded
from ingestion.landing import LandingLog
from lakepulse.core.settings import Settings

__all__ = ["Collector", "create_app", "serve"]


def create_app(settings: Settings | None = None) -> Collector:
    return Collector(settings or Settings.from_env())


def serve(settings: Settings, workers: int = 1) -> None:
    """Run the collector in the foreground (``lakepulse collect``); ``workers`` processes share
    the port and one landing writer, a thread of this process (``group_commit.SharedWriter``):
    its rounds take every worker's requests, so a landing file holds what one worker's would
    at the same load, not a share of it."""
    writer = None
    if workers > 1:
        landing = LandingLog(settings.landing_dir, keep_dirs_open=True)
        writer = SharedWriter(functools.partial(land_encoded, landing)).start()
        os.environ[WRITER_ENV] = writer.address  # the workers are spawned with it
    try:
        _run(settings, workers)
    finally:
        if writer is not None:
            os.environ.pop(WRITER_ENV, None)
            writer.close()


def _run(settings: Settings, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        "ingestion.collector:create_app" if workers > 1 else create_app(settings),
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=settings.collector_host,
        port=settings.collector_port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
