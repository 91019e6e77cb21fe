"""Segment-compatible HTTP collector (an ASGI app served by uvicorn).

Speaks the Segment HTTP Tracking API (``/v1/batch``, ``/v1/track`` ...), so any Segment,
RudderStack or Jitsu SDK can point its host here, and the browser API of analytics.js /
analytics-next: the short routes (``/v1/t``, ``/v1/p`` ... ``/v1/b``), ``text/plain`` and
``sendBeacon`` bodies carrying their ``writeKey``, CORS for any origin, and the project
settings a page loads at start. A request is acknowledged only after its events are durable in
the landing log. Plain ASGI rather than a web framework: this is the hot path and it has a
handful of routes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson

from ingestion.contract import (
    MAX_BATCH_BYTES,
    NotCompiled,
    check_events,
    decode_request,
)
from ingestion.landing import LandingLog, backlog, read_cursors
from ingestion.tenants import Tenant, TenantRegistry
from ingestion.wire import HttpError, decode_body, parse_json
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
SETTINGS_ROUTE = re.compile(r"/v1/projects/([^/]{1,512})/settings")
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
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


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
        self.landing = LandingLog(settings.landing_dir, keep_dirs_open=True)
        self.tenants = TenantRegistry(settings.tenants_file)
        self.counters: Counter[str] = Counter()
        self.committer = GroupCommitter(self._persist)
        self.started = time.time()
        self.last_write: float | None = None
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
                await self._respond(
                    send, 200, self.project_settings(match.group(1), scope), extra=_CACHE_MINUTE
                )
            elif method == "GET" and path == "/health":
                await self._respond(
                    send, 200, {"status": "ok", "uptime_s": round(time.time() - self.started, 1)}
                )
            elif method == "GET" and path == "/metrics":
                await self._respond(send, 200, self.metrics())
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

    def project_settings(self, write_key: str, scope: dict) -> dict[str, Any]:
        """What analytics.js / analytics-next load from ``{cdnURL}/v1/projects/{key}/settings``
        at start: the Segment.io destination pointed back at this collector, nothing else to
        load (no device-mode destinations, middleware or remote plugins), and the SDK's own
        metrics off."""
        if self.tenants.resolve(write_key) is None:
            raise HttpError(401, "invalid_write_key", "unknown write key")
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        if not _HOST.fullmatch(host):
            host = f"{self.settings.collector_host}:{self.settings.collector_port}"
        proto = headers.get(b"x-forwarded-proto", scope.get("scheme", "http").encode())
        protocol = "https" if proto.strip().lower() == b"https" else "http"
        return {
            "integrations": {
                "Segment.io": {
                    "apiKey": write_key,
                    "apiHost": f"{host}/v1",
                    "protocol": protocol,
                    "addBundledMetadata": True,
                    "unbundledIntegrations": [],
                    "maybeBundledConfigIds": {},
                }
            },
            "plan": {
                "track": {"__default": {"enabled": True, "integrations": {}}},
                "identify": {"__default": {"enabled": True}},
                "group": {"__default": {"enabled": True}},
            },
            "edgeFunction": {},
            "analyticsNextEnabled": True,
            "middlewareSettings": {},
            "enabledMiddleware": {},
            "metrics": {"sampleRate": 0},
            "legacyVideoPluginsEnabled": False,
            "remotePlugins": [],
        }

    async def ingest(
        self, path: str, headers: dict[bytes, bytes], raw: bytes, query: bytes = b""
    ) -> tuple[int, dict]:
        batched = path in BATCH_ROUTES
        default_type = None if batched else SINGLE_ROUTES[path]
        checked = None
        request = decode_request(raw, batched)  # the compiled pass; None: not for it
        if request is not None:
            tenant = self._tenant(headers, request.write_key, query)
            received = datetime.now(UTC)
            # An event orjson refuses raises NotCompiled: the request goes the interpreted way.
            with contextlib.suppress(NotCompiled):
                checked = check_events(
                    request.events,
                    tenant_id=tenant.tenant_id,
                    secret=tenant.secret,
                    received_at=received,
                    batch_context=request.context,
                    batch_sent_at=request.sent_at,
                    default_type=default_type,
                    body_bytes=len(raw),
                    compiled=True,
                )
        if checked is None:
            body, lenient = parse_json(raw)
            if not isinstance(body, dict):
                raise HttpError(400, "invalid_body", "body must be a JSON object")
            tenant = self._tenant(headers, body.get("writeKey"), query)
            if batched:
                messages = body.get("batch")
                if not isinstance(messages, list):
                    raise HttpError(400, "invalid_batch", "'batch' must be an array of events")
            else:
                messages = [body]
            received = datetime.now(UTC)
            checked = check_events(
                messages,
                tenant_id=tenant.tenant_id,
                secret=tenant.secret,
                received_at=received,
                batch_context=body.get("context")
                if isinstance(body.get("context"), dict)
                else None,
                batch_sent_at=body.get("sentAt"),
                default_type=default_type,
                body_bytes=len(raw),
                compiled=False,
                lenient=lenient,
            )
        if checked.unexpected:
            self.counters["validation_errors"] += checked.unexpected
        good, bad, report = checked.good, checked.bad, checked.report
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
        self.counters["events_compiled"] += checked.compiled
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
                    "events_compiled",
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


_CACHE_MINUTE = [(b"cache-control", b"public, max-age=60")]


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
