"""The collector under abuse: SIGKILL under load loses no acknowledged event; hostile bodies
(deep nesting, encodings, bombs, invalid UTF-8, NaN, huge headers, slow bodies) get a JSON 4xx
or quarantine the bad event alone; and generated requests never get a 5xx and lose nothing."""

import base64
import gzip
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections import Counter

import httpx
import orjson
import psutil
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ingestion.landing import LandingLog
from ingestion.privacy import MAX_NESTING
from lakepulse.core.settings import PROJECT_ROOT
from tests.conftest import wait_for_http
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def landed_ids(settings) -> list[str]:
    ids = []
    for f in LandingLog(settings.landing_dir).files("events"):
        ids += [orjson.loads(line)["message_id"] for line in f.path.read_bytes().splitlines()]
    return ids


def start_collector(settings, workers: int = 1) -> subprocess.Popen:
    """``lakepulse collect``, answering; with several workers in a session of their own, to be
    killed together at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lakepulse.cli", "collect", "--workers", str(workers)],
        env=settings.process_env(),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=workers > 1,
    )
    wait_for_http(f"{settings.collector_url}/health", process=proc)
    return proc


def send_until(stop: threading.Event, settings, tenant, acked: set[str], lock) -> None:
    """Batches of 25 new messages until ``stop``, through restarts; each one the collector
    acknowledged goes into ``acked``."""
    with httpx.Client(base_url=settings.collector_url, timeout=5) as http:
        while not stop.is_set():
            batch = [
                {
                    "type": "track",
                    "event": "Product Viewed",
                    "anonymousId": "a",
                    "messageId": str(uuid.uuid4()),
                }
                for _ in range(25)
            ]
            try:
                response = http.post(
                    "/v1/batch", json={"batch": batch}, headers=auth(tenant.write_key)
                )
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            if response.status_code == 200:
                with lock:
                    acked.update(m["messageId"] for m in batch)


@pytest.mark.serial
def test_sigkill_under_load_loses_no_acknowledged_event(settings, tenant):
    rng = random.Random(11)
    acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    threads = [
        threading.Thread(target=send_until, args=(stop, settings, tenant, acked, lock))
        for _ in range(4)
    ]
    proc = start_collector(settings)
    for thread in threads:
        thread.start()
    try:
        # Each life of the collector is killed once it has acknowledged a (random) number of
        # batches, with the clients still sending: a count of acknowledgements, not a time.
        for _ in range(4):
            target = len(acked) + 25 * rng.randint(4, 40)
            wait_until(lambda target=target: len(acked) >= target, "acknowledgements")
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = start_collector(settings)
        target = len(acked) + 25 * 4
        wait_until(lambda: len(acked) >= target, "acknowledgements after the last restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        proc.kill()
        proc.wait()
    stored = landed_ids(settings)
    assert acked <= set(stored), f"{len(acked - set(stored))} acknowledged events lost"


@pytest.mark.serial
def test_sigkill_of_a_worker_or_the_shared_writer_loses_no_acknowledged_event(settings, tenant):
    """With two workers and their shared landing writer (a thread of the supervising process),
    SIGKILL a worker (uvicorn starts another), then the supervisor with its writer (the
    workers write alone from then on): no acknowledged event lost, none landed twice (the
    clients never send a batch again, so a second copy would be the collector's)."""
    acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def more_acknowledged(batches: int) -> None:
        target = len(acked) + 25 * batches
        wait_until(lambda: len(acked) >= target, "acknowledgements", timeout=60)

    threads = [
        threading.Thread(target=send_until, args=(stop, settings, tenant, acked, lock))
        for _ in range(4)
    ]
    proc = start_collector(settings, workers=2)
    try:
        for thread in threads:
            thread.start()
        more_acknowledged(20)
        workers = [
            p
            for p in psutil.Process(proc.pid).children()
            if "--multiprocessing-fork" in p.cmdline()
        ]
        assert len(workers) == 2
        workers[0].kill()
        more_acknowledged(20)
        proc.send_signal(signal.SIGKILL)  # the supervisor and the writer with it
        proc.wait()
        more_acknowledged(20)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stored = landed_ids(settings)
    assert acked <= set(stored), f"{len(acked - set(stored))} acknowledged events lost"
    assert [i for i, n in Counter(stored).items() if n > 1] == []


def nested(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


def good(**extra) -> dict:
    return {
        "type": "track",
        "event": "Product Viewed",
        "anonymousId": "a",
        "messageId": str(uuid.uuid4()),
        **extra,
    }


def landed(settings, kind: str) -> list[dict]:
    return [
        orjson.loads(line)
        for f in LandingLog(settings.landing_dir).files(kind)
        for line in f.path.read_bytes().splitlines()
    ]


def test_deep_nesting_rejects_that_event_and_keeps_the_rest(settings, tenant, collector):
    # The request of issue 14: 500 levels deep was a 500 and lost the good events with it.
    ok, deep, deep_top = good(), good(properties=nested(500)), good(integrations=nested(400))
    allowed = good(properties=nested(MAX_NESTING))
    response = httpx.post(
        f"{collector}/v1/batch",
        content=json.dumps({"batch": [ok, deep, deep_top, allowed]}),  # orjson stops at 254
        headers=auth(tenant.write_key),
    )
    assert response.status_code == 200, response.text
    reasons = {r["index"]: r["reason"] for r in response.json()["rejected"]}
    assert set(reasons) == {1, 2}
    assert f"deeper than {MAX_NESTING} levels" in reasons[1]
    assert {r["message_id"] for r in landed(settings, "events")} == {
        ok["messageId"],
        allowed["messageId"],
    }
    quarantined = {r["message_id"]: r for r in landed(settings, "rejected")}
    assert set(quarantined) == {deep["messageId"], deep_top["messageId"]}
    assert "truncated" in quarantined[deep["messageId"]]["payload"]


def hostile_requests(key: str) -> list[tuple[str, str, bytes, dict, int, str]]:
    """(name, route, body, headers, expected status, expected error code or '')."""
    batch = orjson.dumps({"batch": [good()]})
    big = orjson.dumps({"batch": [good(properties={"blob": "x" * 1000}) for _ in range(400)]})
    bomb = gzip.compress(b"[" + b" " * 50_000_000 + b"]")
    basic = auth(key)
    return [
        (
            "nesting past the parser",
            "/v1/batch",
            b"[" * 5000 + b"]" * 5000,
            basic,
            400,
            "invalid_json",
        ),
        (
            "deflate",
            "/v1/batch",
            zlib.compress(batch),
            {**basic, "Content-Encoding": "deflate"},
            200,
            "",
        ),
        (
            "raw deflate",
            "/v1/batch",
            zlib.compress(batch)[2:-4],
            {**basic, "Content-Encoding": "deflate"},
            200,
            "",
        ),
        (
            "truncated gzip",
            "/v1/batch",
            gzip.compress(big)[:-300],
            {**basic, "Content-Encoding": "gzip"},
            400,
            "invalid_gzip",
        ),
        (
            "gzip that is not",
            "/v1/batch",
            b"plain",
            {**basic, "Content-Encoding": "gzip"},
            400,
            "invalid_gzip",
        ),
        (
            "gzip bomb",
            "/v1/batch",
            bomb,
            {**basic, "Content-Encoding": "gzip"},
            413,
            "body_too_large",
        ),
        (
            "brotli",
            "/v1/batch",
            batch,
            {**basic, "Content-Encoding": "br"},
            415,
            "unsupported_encoding",
        ),
        (
            "invalid UTF-8",
            "/v1/batch",
            b'{"batch": [{"event": "\xff\xfe"}]}',
            basic,
            400,
            "invalid_utf8",
        ),
        ("not an object", "/v1/t", b"[1, 2]", basic, 400, "invalid_body"),
        ("batch not a list", "/v1/b", b'{"batch": {"a": 1}}', basic, 400, "invalid_batch"),
        (
            "huge header",
            "/v1/batch",
            batch,
            {**basic, "X-Padding": "p" * 100_000},
            431,
            "headers_too_large",
        ),
        (
            "garbage auth",
            "/v1/batch",
            batch,
            {"Authorization": "Basic " + "@" * 9000},
            401,
            "invalid_auth",
        ),
        ("empty body", "/v1/t", b"", basic, 400, "invalid_json"),
    ]


def test_hostile_bodies_get_a_json_client_error_naming_the_problem(settings, tenant, collector):
    # One collector for the whole table: a case that broke it would fail every later one.
    for name, route, body, headers, status, code in hostile_requests(tenant.write_key):
        response = httpx.post(f"{collector}{route}", content=body, headers=headers, timeout=30)
        assert response.status_code == status, (name, response.text)
        if code:
            assert response.json()["code"] == code and response.json()["message"], name
    assert len(landed(settings, "events")) == 2  # the deflate and raw-deflate bodies


HOSTILE_LITERALS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b'"\\ud800 lone"']


def test_values_json_cannot_carry_reject_their_event_only(settings, tenant, collector):
    for literal in HOSTILE_LITERALS:
        ok, bad = good(), good()
        body = orjson.dumps({"batch": [ok, {**bad, "properties": {"price": "HOSTILE"}}]})
        response = httpx.post(
            f"{collector}/v1/batch",
            content=body.replace(b'"HOSTILE"', literal),
            headers=auth(tenant.write_key),
        )
        assert response.status_code == 200, (literal, response.text)
        assert [r["index"] for r in response.json().get("rejected", [])] == [1], literal
        assert ok["messageId"] in {r["message_id"] for r in landed(settings, "events")}
        assert bad["messageId"] in {r["message_id"] for r in landed(settings, "rejected")}
    assert len(landed(settings, "events")) == len(landed(settings, "rejected")) == 5


def test_duplicate_keys_take_the_last_value(settings, tenant, collector):
    body = (
        b'{"type": "track", "type": "page", "name": "Home", "anonymousId": "a", "messageId": "d"}'
    )
    response = httpx.post(f"{collector}/v1/p", content=body, headers=auth(tenant.write_key))
    assert response.status_code == 200
    assert [r["type"] for r in landed(settings, "events")] == ["page"]


@pytest.fixture
def quick_body_timeout(monkeypatch):
    monkeypatch.setenv("LAKEPULSE_COLLECTOR_BODY_TIMEOUT_S", "1")


def test_a_slow_body_is_a_408_and_others_are_served_meanwhile(
    settings, tenant, quick_body_timeout, collector
):
    host, port = collector.removeprefix("http://").split(":")
    body = orjson.dumps({**good(), "writeKey": tenant.write_key})
    with socket.create_connection((host, int(port))) as slow:
        slow.sendall(
            b"POST /v1/t HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:9]
        )
        other = httpx.post(f"{collector}/v1/t", content=body)  # while the slow one waits
        assert other.status_code == 200
        slow.settimeout(30)
        answer = b""
        while not answer.endswith(b"}") and (chunk := slow.recv(4096)):
            answer += chunk  # headers and body may come in separate segments
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"code":"body_timeout"' in answer
    assert len(landed(settings, "events")) == 1


# --- Property-based: generated requests against the real HTTP collector ---------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
HOSTILE_VALUES = st.sampled_from(
    [b"NaN", b"-Infinity", b"1e400", b'"\\udc00"', b"123456789012345678901234567890", b"[]"]
)
EVENT_FIELDS = {
    "type": st.sampled_from(["track", "page", "identify", "screen", "group", "alias", "bogus"])
    | JSON,
    "event": st.sampled_from(["Order Completed", "Product Viewed", ""]) | JSON,
    "userId": st.text(max_size=10) | st.integers(-(2**63), 2**63 - 1) | JSON,
    "anonymousId": st.text(min_size=1, max_size=10) | JSON,
    "timestamp": st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=12) | JSON,
    "sentAt": st.datetimes().map(lambda d: d.isoformat() + "Z") | JSON,
    "properties": st.fixed_dictionaries(
        {}, optional={"revenue": JSON | st.floats(0, 1e6), "order_id": JSON, "email": st.emails()}
    )
    | st.integers(MAX_NESTING - 2, MAX_NESTING + 40).map(nested)
    | JSON,
    "traits": st.dictionaries(st.sampled_from(["email", "phone", "name", "plan"]), JSON, max_size=3)
    | JSON,
    "context": st.fixed_dictionaries(
        {},
        optional={
            "ip": st.ip_addresses().map(str),
            "userAgent": st.text(max_size=30),
            "page": st.fixed_dictionaries(
                {}, optional={"url": st.text(max_size=30) | JSON, "path": JSON, "title": JSON}
            ),
            "campaign": JSON,
        },
    )
    | JSON,
    "groupId": JSON,
    "previousId": JSON,
    "integrations": st.integers(200, 600).map(nested) | JSON,
}
# A valid analytics-next envelope with some of its fields replaced by generated values.
SDK_EVENT = {
    "type": "track",
    "event": "Product Viewed",
    "anonymousId": "anon-1",
    "properties": {"product_id": "sku-1", "price": 30},
    "context": {
        "page": {"path": "/", "url": "http://shop.example/", "title": "Shop"},
        "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile",
        "library": {"name": "analytics.js", "version": "next-1.84.3"},
    },
    "timestamp": "2026-11-30T10:00:00.000Z",
    "sentAt": "2026-11-30T10:00:00.100Z",
    "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
}


@st.composite
def mutated_events(draw) -> dict:
    """The envelope with up to three fields replaced by generated values and up to two
    dropped: most events stay close to what an SDK sends, so both paths get exercised."""
    event = {k: v for k, v in SDK_EVENT.items()}
    for field in draw(st.lists(st.sampled_from(sorted(SDK_EVENT)), max_size=2, unique=True)):
        del event[field]
    for field in draw(st.lists(st.sampled_from(sorted(EVENT_FIELDS)), max_size=3, unique=True)):
        event[field] = draw(EVENT_FIELDS[field])
    event["messageId"] = "MID"  # a fresh uuid per request (hypothesis repeats its own)
    return event


MUTATED_EVENTS = mutated_events()
EVENTS = st.one_of(  # weighted: mostly envelopes, some with literals JSON cannot carry
    *[MUTATED_EVENTS] * 6,
    MUTATED_EVENTS.map(lambda e: {**e, "properties": {"price": "HOSTILE"}}),
    JSON,
)


@st.composite
def requests(draw) -> tuple[str, bytes, dict[str, str], str, bool]:
    """(route, body, headers, encoding, key in body): structure-aware bodies (SDK envelopes
    with mutated fields, some holding literals JSON cannot carry) or raw bytes, to be sent
    plain or encoded, with the key in the header or (``"KEY"``, filled in later) the body."""
    route = draw(st.sampled_from(["/v1/batch", "/v1/b", "/v1/t", "/v1/p", "/v1/i", "/v1/track"]))
    structured = draw(st.integers(0, 3)) > 0
    key_in_body = draw(st.booleans())
    if not structured:
        body = draw(st.binary(max_size=300))
    else:
        events = draw(st.lists(EVENTS, min_size=1, max_size=6))
        body_obj: object = (
            {"batch": events, "sentAt": "2026-11-30T10:00:01Z"}
            if route in ("/v1/batch", "/v1/b")
            else events[0]
        )
        if key_in_body and isinstance(body_obj, dict):
            body_obj = {**body_obj, "writeKey": "KEY"}
        body = json.dumps(body_obj).encode()  # orjson cannot write 600 levels
        while b'"HOSTILE"' in body:
            body = body.replace(b'"HOSTILE"', draw(HOSTILE_VALUES), 1)
        if route in ("/v1/batch", "/v1/b") and draw(st.integers(0, 9)) == 0:
            body = b'{"batch": [], ' + body[1:]  # a duplicate key: the last one counts
    encoding = draw(st.sampled_from(["", "", "", "gzip", "deflate", "truncated"]))
    content_type = draw(st.sampled_from(["application/json", "text/plain"]))
    return route, body, {"Content-Type": content_type}, encoding, key_in_body


def encoded(body: bytes, encoding: str) -> tuple[bytes, dict[str, str]]:
    if encoding == "truncated":
        return gzip.compress(body)[:-5], {"Content-Encoding": "gzip"}
    if encoding == "gzip":
        return gzip.compress(body), {"Content-Encoding": "gzip"}
    if encoding == "deflate":
        return zlib.compress(body), {"Content-Encoding": "deflate"}
    return body, {}


def messages_of(route: str, body: bytes) -> list:
    """The events of a body the collector accepted (its lenient parse included)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = json.loads(body.decode())
    return parsed["batch"] if route in ("/v1/batch", "/v1/b") else [parsed]


FUZZ_EXAMPLES = int(os.environ.get("LAKEPULSE_FUZZ_EXAMPLES", "1000"))
"""Generated requests per run: 1000 in `make test` (60-80 s on 2 shared cores); set
LAKEPULSE_FUZZ_EXAMPLES=20000 for a longer hunt."""


def test_generated_requests_never_5xx_and_every_accepted_event_is_in_bronze_or_rejected(
    settings, tenant, collector, workspace
):
    to_bronze: set[str] = set()
    to_quarantine: Counter[tuple[str | None, str]] = Counter()
    statuses: Counter[int] = Counter()
    codes: Counter = Counter()
    http = httpx.Client(base_url=collector, timeout=10)

    @hsettings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(request=requests())
    def check(request: tuple[str, bytes, dict[str, str], str, bool]) -> None:
        route, body, headers, encoding, key_in_body = request
        body = body.replace(b'"KEY"', orjson.dumps(tenant.write_key))
        while b'"MID"' in body:
            body = body.replace(b'"MID"', orjson.dumps(str(uuid.uuid4())), 1)
        content, encoding_header = encoded(body, encoding)
        headers = {**headers, **encoding_header}
        if not key_in_body:
            headers |= auth(tenant.write_key)
        response = http.post(route, content=content, headers=headers)
        statuses[response.status_code] += 1
        codes[response.json().get("code")] += 1
        assert response.status_code < 500, response.text
        payload = response.json()
        if response.status_code >= 400:
            assert payload["success"] is False and payload["code"] and payload["message"]
        if response.status_code == 200:
            reasons = {item["index"]: item["reason"] for item in payload.get("rejected", [])}
        elif payload["code"] == "invalid_event":  # a single event, quarantined: 400
            reasons = {0: payload["message"]}
        else:
            return
        for index, message in enumerate(messages_of(route, body)):
            message_id = message.get("messageId") if isinstance(message, dict) else None
            message_id = message_id if isinstance(message_id, str) and message_id else None
            if index in reasons:
                to_quarantine[(message_id, reasons[index])] += 1
            elif message_id:
                to_bronze.add(message_id)

    check()
    http.close()
    assert statuses[200] > FUZZ_EXAMPLES // 10, f"too few accepted requests: {statuses}"
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) > FUZZ_EXAMPLES // 10
    assert len(to_bronze) > FUZZ_EXAMPLES // 10 and len(to_quarantine) > FUZZ_EXAMPLES // 10, (
        statuses,
        codes,
    )

    workspace.ingest()
    bronze_ids = {row["message_id"] for row in workspace.bronze("events").to_pylist()}
    quarantined = Counter(
        (row["message_id"], row["reason"])
        for row in workspace.bronze("events_rejected").to_pylist()
    )
    assert not to_bronze - bronze_ids, "accepted events missing from bronze"
    missing = [key for key, n in to_quarantine.items() if quarantined[key] < n]
    assert not missing, (
        f"rejected events not in raw.events_rejected with their reason: {missing[:5]}"
    )
