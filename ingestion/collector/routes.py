"""The collector's HTTP face: an ASGI application (served by uvicorn) routing each request,
authenticating it and answering only once its events are durable.

Speaks the Segment HTTP Tracking API (``/v1/batch``, ``/v1/track`` ...), so any Segment,
RudderStack or Jitsu SDK can point its host here, and the browser API of analytics.js /
analytics-next: the short routes (``/v1/t``, ``/v1/p`` ... ``/v1/b``), ``text/plain`` and
``sendBeacon`` bodies carrying their ``writeKey``, CORS for any origin, and the project
settings a page loads at start (``project_settings``). The events themselves go through
``ingestion.intake`` (contract, privacy, landing log) in rounds shared by concurrent requests
(``group_commit``); ``metrics`` counts them. Plain ASGI rather than a web framework: this is
the hot path and it has a handful of routes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

from ingestion.collector.group_commit import WRITER_ENV, GroupCommitter, SharedCommitter
from ingestion.collector.metrics import Metrics
from ingestion.collector.project_settings import SETTINGS_ROUTE, project_settings
from ingestion.contract import MAX_BATCH_BYTES
from ingestion.intake import Encoded, accept, encode, land_encoded, read_request
from ingestion.landing import LandingLog
from ingestion.tenants import Tenant, TenantRegistry
from ingestion.wire import HttpError, decode_body
from lakepulse.core.settings import Settings

log = logging.getLogger("lakepulse.collector")

EVENT_KINDS = ("track", "page", "screen", "identify", "group", "alias")
SINGLE_ROUTES = {f"/v1/{kind}": kind for kind in EVENT_KINDS} | {
    f"/v1/{kind[0]}": kind
    for kind in EVENT_KINDS  # analytics.js: /v1/t, /v1/p, /v1/s ...
}
BATCH_ROUTES = frozenset({"/v1/batch", "/v1/b", "/beacon/v1/batch"})
"""``/v1/b``: analytics-next's batching dispatcher; ``/beacon/v1/batch?writeKey=``: RudderStack's
sendBeacon queue, which can set no header and so puts the write key in the query string."""
METRICS_ROUTE = "/v1/m"
"""analytics-next posts its own delivery metrics here when sampled; accepted and discarded."""
BODY_TIMEOUT_S = 10.0
"""A request body not complete within this is answered 408 (a slow or stalled client must
not hold its request open forever); ``LAKEPULSE_COLLECTOR_BODY_TIMEOUT_S`` overrides it."""
MAX_HEADER_BYTES = 32 * 1024
"""Request headers larger than this in all are answered 431 (uvicorn's httptools parser sets
no limit of its own; browsers and SDKs send well under 8 KiB)."""
CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST, OPTIONS, GET"),
    (b"access-control-max-age", b"86400"),
]
DEFAULT_ALLOWED_HEADERS = b"authorization, content-type, content-encoding, x-retry-count"
_HEADER_LIST = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~, -]{1,1024}")
_CACHE_MINUTE = [(b"cache-control", b"public, max-age=60")]


def write_key_from(headers: dict[bytes, bytes], body: dict | None, query: bytes = b"") -> str:
    """Segment sends the write key as the Basic-auth username; browser SDKs' beacons, which
    cannot set headers, put it in the body (Segment) or the query string (RudderStack)."""
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
    for name, value in parse_qsl(query.decode("latin-1")):
        if name == "writeKey":
            return value
    return ""


class Collector:
    """The ASGI application; counters are exposed on ``/metrics`` for operators."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.landing = LandingLog(settings.landing_dir, keep_dirs_open=True)
        self.tenants = TenantRegistry(settings.tenants_file)
        self.metrics = Metrics(settings, self.landing)
        self.counters = self.metrics.counters
        self.committer: GroupCommitter | SharedCommitter = GroupCommitter(self._persist)
        if address := os.environ.get(WRITER_ENV):  # a worker of several: one writer for all
            self.committer = SharedCommitter(address, self.committer)
        self.started = time.time()
        self.body_timeout_s = float(
            os.environ.get("LAKEPULSE_COLLECTOR_BODY_TIMEOUT_S", BODY_TIMEOUT_S)
        )

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"].rstrip("/") or "/"
        try:
            if sum(len(name) + len(value) for name, value in scope["headers"]) > MAX_HEADER_BYTES:
                raise HttpError(
                    431, "headers_too_large", f"request headers exceed {MAX_HEADER_BYTES} bytes"
                )
            if method == "OPTIONS":
                await self._respond(send, 204, None, extra=_preflight_headers(scope))
            elif method == "GET" and (match := SETTINGS_ROUTE.fullmatch(path)):
                payload = project_settings(match.group(1), scope, self.tenants, self.settings)
                await self._respond(send, 200, payload, extra=_CACHE_MINUTE)
            elif method == "GET" and path == "/health":
                await self._respond(
                    send, 200, {"status": "ok", "uptime_s": round(time.time() - self.started, 1)}
                )
            elif method == "GET" and path == "/metrics":
                await self._respond(send, 200, self.metrics.payload())
            elif method == "POST" and (path in BATCH_ROUTES or path in SINGLE_ROUTES):
                headers = dict(scope["headers"])
                raw = await self._read_body(receive, headers)
                status, payload = await self.ingest(
                    path, headers, raw, scope.get("query_string", b"")
                )
                await self._respond(send, status, payload)
            elif method == "POST" and path == METRICS_ROUTE:
                await self._read_body(receive, {})
                await self._respond(send, 200, {"success": True})
            else:
                shown = path[:200]
                raise HttpError(
                    404, "not_found", f"no route for {method} {shown}; events go to POST /v1/batch"
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
                if isinstance(self.committer, SharedCommitter):
                    try:
                        await self.committer.connect()
                    except OSError as err:
                        log.warning("no shared landing writer (%s): this worker writes alone", err)
                self._publisher = asyncio.create_task(self._publish_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, receive: Any, headers: dict[bytes, bytes]) -> bytes:
        """The whole body, decoded; 408 when it does not arrive within ``body_timeout_s``
        (other requests are served meanwhile: the wait is asynchronous)."""
        try:
            async with asyncio.timeout(self.body_timeout_s):
                body = await self._receive_all(receive)
        except TimeoutError:
            raise HttpError(
                408, "body_timeout", f"request body not received within {self.body_timeout_s} s"
            ) from None
        return decode_body(body, headers.get(b"content-encoding", b""))

    async def _receive_all(self, receive: Any) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HttpError(400, "client_disconnected", "client went away mid-body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BATCH_BYTES:
                raise HttpError(
                    413, "body_too_large", f"request body exceeds {MAX_BATCH_BYTES} bytes"
                )
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def ingest(
        self, path: str, headers: dict[bytes, bytes], raw: bytes, query: bytes = b""
    ) -> tuple[int, dict]:
        """One request's events: read, authenticated, through ``intake.accept``, durable
        (group commit), then answered with the rejected ones reported by index."""
        batched = path in BATCH_ROUTES
        submission = read_request(raw, batched, None if batched else SINGLE_ROUTES[path])
        tenant = self._tenant(headers, submission.write_key, query)
        checked = accept(submission, tenant, datetime.now(UTC))
        counters = self.counters
        if checked.unexpected:
            counters["validation_errors"] += checked.unexpected
        good, bad, report = checked.good, checked.bad, checked.report
        try:
            if good or bad:
                try:  # on the event loop: the round's thread only writes
                    item = encode(tenant.tenant_id, good, bad)
                except Exception as err:  # answered as the round's failure would be
                    raise OSError(str(err)) from err
                await self.committer.persist(item)
                counters["events_stored"] += item[2]
                counters["events_quarantined"] += item[4]
                self.metrics.last_write = time.time()
        except OSError as err:
            log.exception("landing log write failed")
            raise HttpError(
                503, "storage_unavailable", f"events not stored ({err.strerror or err}); retry"
            ) from None
        counters["requests"] += 1
        counters["events_accepted"] += len(good)
        counters["events_rejected"] += len(bad)
        counters["events_compiled"] += checked.compiled
        if not batched and bad:
            # A single-event call whose only event is invalid is a client error.
            raise HttpError(400, "invalid_event", report[0]["reason"])
        payload: dict[str, Any] = {"success": True}
        if report:
            payload["rejected"] = report
        return 200, payload

    def _tenant(self, headers: dict[bytes, bytes], body_key: Any, query: bytes) -> Tenant:
        tenant = self.tenants.resolve(write_key_from(headers, {"writeKey": body_key}, query))
        if tenant is None:
            raise HttpError(
                401,
                "invalid_write_key",
                "missing or unknown write key (send it as the Basic-auth username)",
            )
        return tenant

    def _persist(self, items: list[Encoded]) -> None:
        """A group commit round: one file per tenant and kind for everything that arrived
        during the last write (in the committer's thread; the rows were encoded on the event
        loop, by ``intake.encode``)."""
        land_encoded(self.landing, items)

    async def _publish_loop(self) -> None:
        while True:
            await asyncio.sleep(1)
            await asyncio.to_thread(self.metrics.publish)

    async def _respond(
        self,
        send: Any,
        status: int,
        payload: dict | None,
        extra: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    ) -> None:
        body = b"" if payload is None else orjson.dumps(payload)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *CORS_HEADERS,
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _preflight_headers(scope: dict) -> list[tuple[bytes, bytes]]:
    """A CORS preflight allows the headers the page asks for (analytics-next adds
    ``Authorization`` and ``X-Retry-Count``), and a public page calling a collector on a
    private address (Chrome's Private Network Access)."""
    headers = dict(scope["headers"])
    asked = headers.get(b"access-control-request-headers", b"")
    allowed = asked if _HEADER_LIST.fullmatch(asked) else DEFAULT_ALLOWED_HEADERS
    extra = [(b"access-control-allow-headers", allowed)]
    if headers.get(b"access-control-request-private-network", b"").lower() == b"true":
        extra.append((b"access-control-allow-private-network", b"true"))
    return extra
