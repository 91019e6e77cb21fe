"""The ceiling for a Python collector on this machine: an ASGI app that parses each batch's
JSON, appends the body to a file and fsyncs before answering, with no authentication,
validation, privacy rules or group commit. ``bench_collector`` serves it with uvicorn like
ours, so the gap between the two is what the contract costs, and the gap between this and the
append+fsync baseline is what HTTP and Python cost."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson

_OUT_DIR = os.environ.get("MINIMAL_COLLECTOR_DIR", ".")


class MinimalCollector:
    def __init__(self) -> None:
        self.handle = open(os.path.join(_OUT_DIR, f"minimal.{os.getpid()}.ndjson"), "ab")  # noqa: SIM115
        self.lock = asyncio.Lock()

    def _append(self, body: bytes) -> None:
        self.handle.write(body + b"\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if scope["method"] == "POST":
            orjson.loads(body)
            async with self.lock:
                await asyncio.to_thread(self._append, body)
        out = b'{"success":true}'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(out)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": out})


def create_app() -> MinimalCollector:
    return MinimalCollector()
