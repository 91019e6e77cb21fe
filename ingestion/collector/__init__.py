"""Segment-compatible HTTP collector, one module a concern: ``routes`` (the ASGI application:
routing, authentication, durability before the answer), ``project_settings`` (what browser
SDKs load at start), ``group_commit`` (requests sharing write rounds) and ``metrics``
(counters and ``/metrics``). The events go through ``ingestion.intake``, the one way into the
lake."""

from __future__ import annotations

from ingestion.collector.routes import Collector
from lakepulse.core.settings import Settings

__all__ = ["Collector", "create_app", "serve"]


def create_app(settings: Settings | None = None) -> Collector:
    return Collector(settings or Settings.from_env())


def serve(settings: Settings, workers: int = 1) -> None:
    """Run the collector in the foreground (``lakepulse collect``); ``workers`` processes share
    the port, each with its own group commit."""
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
