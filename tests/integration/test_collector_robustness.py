"""The collector under abuse: SIGKILL under load loses no acknowledged event, and thousands of
generated payloads produce no 5xx and lose nothing that was acknowledged."""

import base64
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ingestion.landing import LandingLog
from lakepulse.core.settings import PROJECT_ROOT
from tests.conftest import wait_for_http

pytestmark = pytest.mark.integration


def auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def landed_ids(settings) -> list[str]:
    ids = []
    for f in LandingLog(settings.landing_dir).files("events"):
        ids += [orjson.loads(line)["message_id"] for line in f.path.read_bytes().splitlines()]
    return ids


def start_collector(settings) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lakepulse.cli", "collect"],
        env=settings.process_env(),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_http(f"{settings.collector_url}/health", process=proc)
    return proc


@pytest.mark.serial
def test_sigkill_under_load_loses_no_acknowledged_event(settings, tenant):
    rng = random.Random(11)
    acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
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

    threads = [threading.Thread(target=client) for _ in range(4)]
    proc = start_collector(settings)
    for thread in threads:
        thread.start()
    try:
        for _ in range(4):
            time.sleep(rng.uniform(0.3, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = start_collector(settings)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        proc.kill()
        proc.wait()
    stored = landed_ids(settings)
    assert len(acked) > 1000, "the load was too light to mean anything"
    assert acked <= set(stored), f"{len(acked - set(stored))} acknowledged events lost"


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
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
    | JSON,
    "traits": st.dictionaries(st.sampled_from(["email", "phone", "name", "plan"]), JSON, max_size=3)
    | JSON,
    "context": st.fixed_dictionaries(
        {},
        optional={
            "ip": st.ip_addresses().map(str),
            "userAgent": st.text(max_size=30),
            "page": JSON,
        },
    )
    | JSON,
    "groupId": JSON,
    "previousId": JSON,
}
FUZZED_EVENTS = st.fixed_dictionaries({"messageId": st.uuids().map(str)}, optional=EVENT_FIELDS)
VALID_EVENTS = st.fixed_dictionaries(
    {
        "messageId": st.uuids().map(str),
        "type": st.just("track"),
        "event": st.text(min_size=1, max_size=20).filter(str.strip),
        "anonymousId": st.text(min_size=1, max_size=10),
    },
    optional={
        "properties": st.dictionaries(st.text(max_size=8), JSON, max_size=4),
        "traits": st.fixed_dictionaries(
            {}, optional={"email": st.emails(), "plan": st.text(max_size=5)}
        ),
        "context": st.fixed_dictionaries(
            {}, optional={"ip": st.ip_addresses().map(str), "userAgent": st.text(max_size=30)}
        ),
    },
)
EVENTS = VALID_EVENTS | FUZZED_EVENTS
BODIES = st.one_of(
    st.builds(lambda batch: orjson.dumps({"batch": batch}), st.lists(EVENTS | JSON, max_size=8)),
    st.builds(orjson.dumps, EVENTS),
    st.builds(orjson.dumps, JSON),
    st.binary(max_size=200),
)


def test_fuzzed_payloads_never_5xx_and_lose_nothing_acknowledged(settings, tenant, collector):
    acknowledged: list[str] = []
    http = httpx.Client(base_url=collector, timeout=10)

    @hsettings(
        max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(
        body=BODIES, route=st.sampled_from(["/v1/batch", "/v1/track", "/v1/page", "/v1/identify"])
    )
    def check(body: bytes, route: str) -> None:
        response = http.post(route, content=body, headers=auth(tenant.write_key))
        assert response.status_code < 500, response.text
        payload = response.json()
        if response.status_code == 200:
            parsed = orjson.loads(body)
            messages = parsed["batch"] if route == "/v1/batch" else [parsed]
            rejected = {r["index"] for r in payload.get("rejected", [])}
            acknowledged.extend(
                m["messageId"]
                for i, m in enumerate(messages)
                if i not in rejected and isinstance(m.get("messageId"), str) and m["messageId"]
            )
        else:
            assert payload["success"] is False and payload["message"]

    check()
    http.close()
    assert len(acknowledged) > 100
    assert set(acknowledged) <= set(landed_ids(settings))
    metrics = httpx.get(f"{collector}/metrics").json()
    assert metrics["events_stored"] == len(landed_ids(settings))
