"""Segment-compatible HTTP collector (an ASGI app served by uvicorn).

Speaks the Segment HTTP Tracking API (``/v1/batch``, ``/v1/track`` ...), so any Segment,
RudderStack or Jitsu SDK can point its host here. A request is acknowledged only after its
events are durable in the landing log. Plain ASGI rather than a web framework: this is the hot
path and it has a handful of routes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import logging
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ingestion.contract import MAX_BATCH_BYTES, MAX_EVENT_BYTES, ContractError, normalize, rejection
from ingestion.landing import LandingLog, backlog, read_cursors
from ingestion.tenants import TenantRegistry
from lakepulse.core.settings import Settings

log = logging.getLogger("lakepulse.collector")

SINGLE_ROUTES = {
    f"/v1/{kind}": kind for kind in ("track", "page", "screen", "identify", "group", "alias")
}
CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST, OPTIONS, GET"),
    (b"access-control-allow-headers", b"authorization, content-type, content-encoding"),
    (b"access-control-max-age", b"86400"),
]


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def write_key_from(headers: dict[bytes, bytes], body: dict | None) -> str:
    """Segment sends the write key as the Basic-auth username; some SDKs put it in the body."""
    auth = headers.get(b"authorization", b"")
    if auth[:6].lower() == b"basic ":
        try:
            user = base64.b64decode(auth[6:].strip(), validate=True).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            raise HttpError(
                401, "invalid_auth", "Authorization header is not valid Basic auth"
            ) from None
        if user:
            return user
    if isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        return body["writeKey"]
    return ""


class GroupCommitter:
    """Group commit: requests that arrive while a write is in flight are written together by
    the next one, so fsyncs and files grow with write rounds, not with requests. Each caller
    returns only when its own rows are durable."""

    def __init__(self, write: Callable[[list[tuple[str, list[dict], list[dict]]]], None]):
        self.write = write
        self.pending: list[tuple[tuple[str, list[dict], list[dict]], asyncio.Future]] = []
        self.flusher: asyncio.Task | None = None

    async def persist(self, tenant_id: str, good: list[dict], bad: list[dict]) -> None:
        if not good and not bad:
            return
        future = asyncio.get_running_loop().create_future()
        self.pending.append(((tenant_id, good, bad), future))
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                await asyncio.to_thread(self.write, [item for item, _ in batch])
            except Exception as err:
                failure = err if isinstance(err, OSError) else OSError(str(err))
                for _, future in batch:
                    if not future.done():  # a caller whose client went away is cancelled
                        future.set_exception(failure)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)


class Collector:
    """The ASGI application; counters are exposed on ``/metrics`` for operators."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.landing = LandingLog(settings.landing_dir)
        self.tenants = TenantRegistry(settings.tenants_file)
        self.counters: Counter[str] = Counter()
        self.committer = GroupCommitter(self._persist)
        self.started = time.time()
        self.last_write: float | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"].rstrip("/") or "/"
        try:
            if method == "OPTIONS":
                await self._respond(send, 204, None)
            elif method == "GET" and path == "/health":
                await self._respond(
                    send, 200, {"status": "ok", "uptime_s": round(time.time() - self.started, 1)}
                )
            elif method == "GET" and path == "/metrics":
                await self._respond(send, 200, self.metrics())
            elif method == "POST" and (path == "/v1/batch" or path in SINGLE_ROUTES):
                headers = dict(scope["headers"])
                raw = await self._read_body(receive, headers)
                status, payload = await self.ingest(path, headers, raw)
                await self._respond(send, status, payload)
            else:
                raise HttpError(
                    404, "not_found", f"no route for {method} {path}; events go to POST /v1/batch"
                )
        except HttpError as err:
            self.counters[f"http_{err.status}"] += 1
            await self._respond(
                send, err.status, {"success": False, "code": err.code, "message": err.message}
            )

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.settings.landing_dir.mkdir(parents=True, exist_ok=True)
                self._publisher = asyncio.create_task(self._publish_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, receive: Any, headers: dict[bytes, bytes]) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BATCH_BYTES:
                raise HttpError(
                    413, "body_too_large", f"request body exceeds {MAX_BATCH_BYTES} bytes"
                )
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        encoding = headers.get(b"content-encoding", b"").lower()
        if encoding == b"gzip":
            try:
                decoder = zlib.decompressobj(wbits=31)
                body = decoder.decompress(body, MAX_BATCH_BYTES + 1)
            except (zlib.error, gzip.BadGzipFile):
                raise HttpError(400, "invalid_gzip", "body is not valid gzip") from None
            if len(body) > MAX_BATCH_BYTES:
                raise HttpError(
                    413, "body_too_large", f"decompressed body exceeds {MAX_BATCH_BYTES} bytes"
                )
        elif encoding not in (b"", b"identity"):
            raise HttpError(
                415,
                "unsupported_encoding",
                f"Content-Encoding {encoding.decode()!r} is not supported; use gzip",
            )
        return body

    async def ingest(self, path: str, headers: dict[bytes, bytes], raw: bytes) -> tuple[int, dict]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise HttpError(400, "invalid_json", f"body is not valid JSON: {err}") from None
        if not isinstance(body, dict):
            raise HttpError(400, "invalid_body", "body must be a JSON object")
        tenant = self.tenants.resolve(write_key_from(headers, body))
        if tenant is None:
            raise HttpError(
                401,
                "invalid_write_key",
                "missing or unknown write key (send it as the Basic-auth username)",
            )
        if path == "/v1/batch":
            messages = body.get("batch")
            if not isinstance(messages, list):
                raise HttpError(400, "invalid_batch", "'batch' must be an array of events")
            default_type = None
        else:
            messages, default_type = [body], SINGLE_ROUTES[path]
        received = datetime.now(UTC)
        context = body.get("context") if isinstance(body.get("context"), dict) else None
        good, bad, report = [], [], []
        check_size = len(raw) > MAX_EVENT_BYTES  # no event can be larger than its body
        for index, message in enumerate(messages):
            try:
                if check_size and len(orjson.dumps(message)) > MAX_EVENT_BYTES:
                    raise ContractError(f"event exceeds {MAX_EVENT_BYTES} bytes")
                good.append(
                    normalize(
                        message,
                        tenant_id=tenant.tenant_id,
                        secret=tenant.secret,
                        received_at=received,
                        batch_context=context,
                        batch_sent_at=body.get("sentAt"),
                        default_type=default_type,
                    )
                )
            except Exception as err:  # a ContractError, or a bug: quarantine, never a 5xx
                if not isinstance(err, ContractError):
                    log.exception("unexpected error validating event %d", index)
                    self.counters["validation_errors"] += 1
                    err = ContractError(f"event could not be processed ({type(err).__name__})")
                bad.append(
                    rejection(
                        tenant_id=tenant.tenant_id,
                        secret=tenant.secret,
                        received_at=received,
                        payload=message,
                        reason=str(err),
                        index=index,
                    )
                )
                report.append(
                    {"index": index, "messageId": bad[-1]["message_id"], "reason": str(err)}
                )
        try:
            await self.committer.persist(tenant.tenant_id, good, bad)
        except OSError as err:
            log.exception("landing log write failed")
            raise HttpError(
                503, "storage_unavailable", f"events not stored ({err.strerror or err}); retry"
            ) from None
        self.counters["requests"] += 1
        self.counters["events_accepted"] += len(good)
        self.counters["events_rejected"] += len(bad)
        if path != "/v1/batch" and bad:
            # A single-event call whose only event is invalid is a client error.
            raise HttpError(400, "invalid_event", report[0]["reason"])
        payload: dict[str, Any] = {"success": True}
        if report:
            payload["rejected"] = report
        return 200, payload

    def _persist(self, items: list[tuple[str, list[dict], list[dict]]]) -> None:
        """One file per tenant and kind for everything that arrived during the last write."""
        by_key: dict[tuple[str, str], list[dict]] = {}
        for tenant_id, good, bad in items:
            by_key.setdefault((tenant_id, "events"), []).extend(good)
            by_key.setdefault((tenant_id, "rejected"), []).extend(bad)
        for (tenant_id, kind), rows in by_key.items():
            if rows:
                self.landing.write(tenant_id, kind, rows)
                self.counters["events_stored" if kind == "events" else "events_quarantined"] += len(
                    rows
                )
        self.last_write = time.time()

    @property
    def _metrics_dir(self) -> Path:
        return self.settings.metrics_dir

    def _publish_counters(self) -> None:
        """Each worker process publishes its counters; ``/metrics`` sums the live ones."""
        self._metrics_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._metrics_dir / f".{os.getpid()}.tmp"
        tmp.write_bytes(orjson.dumps(dict(self.counters)))
        os.replace(tmp, self._metrics_dir / f"{os.getpid()}.json")

    def _all_counters(self) -> Counter[str]:
        total: Counter[str] = Counter(self.counters)
        for path in self._metrics_dir.glob("*.json") if self._metrics_dir.exists() else []:
            pid = int(path.stem)
            if pid == os.getpid():
                continue
            try:
                os.kill(pid, 0)
                total.update(orjson.loads(path.read_bytes()))
            except (ProcessLookupError, PermissionError, FileNotFoundError, orjson.JSONDecodeError):
                continue
        return total

    async def _publish_loop(self) -> None:
        while True:
            await asyncio.sleep(1)
            await asyncio.to_thread(self._publish_counters)

    def metrics(self) -> dict[str, Any]:
        counters = self._all_counters()
        return {
            **{
                key: counters.get(key, 0)
                for key in (
                    "requests",
                    "events_accepted",
                    "events_rejected",
                    "events_stored",
                    "events_quarantined",
                )
            },
            "http_errors": {k: v for k, v in counters.items() if k.startswith("http_")},
            "landing_backlog": backlog(
                self.landing, read_cursors(self.settings.loader_state_path, "events")
            ),
            "last_write_age_s": None
            if self.last_write is None
            else round(time.time() - self.last_write, 3),
        }

    async def _respond(self, send: Any, status: int, payload: dict | None) -> None:
        body = b"" if payload is None else orjson.dumps(payload)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *CORS_HEADERS,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


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
