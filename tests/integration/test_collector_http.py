"""The collector over real HTTP: Segment API shape, auth, bad input, and a real Segment SDK."""

import base64
import gzip
import json
import uuid

import httpx
import orjson
import pytest

from ingestion.landing import LandingLog

pytestmark = pytest.mark.integration


def auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def event(**extra):
    return {
        "type": "track",
        "event": "Product Viewed",
        "anonymousId": "anon-1",
        "messageId": str(uuid.uuid4()),
        **extra,
    }


def landed(settings, kind="events"):
    rows = []
    for f in LandingLog(settings.landing_dir).files(kind):
        rows += [orjson.loads(line) for line in f.path.read_bytes().splitlines()]
    return rows


def test_batch_is_acknowledged_after_it_is_on_disk(settings, tenant, collector):
    batch = [event(), event(properties={"revenue": 10})]
    response = httpx.post(
        f"{collector}/v1/batch", json={"batch": batch}, headers=auth(tenant.write_key)
    )
    assert response.status_code == 200 and response.json() == {"success": True}
    assert sorted(r["message_id"] for r in landed(settings)) == sorted(
        e["messageId"] for e in batch
    )
    assert {r["tenant_id"] for r in landed(settings)} == {"acme"}


def test_write_key_in_body_and_single_event_routes(settings, tenant, collector):
    r1 = httpx.post(f"{collector}/v1/track", json={**event(), "writeKey": tenant.write_key})
    r2 = httpx.post(
        f"{collector}/v1/page",
        json={"anonymousId": "a", "name": "Home", "messageId": "p1"},
        headers=auth(tenant.write_key),
    )
    assert (r1.status_code, r2.status_code) == (200, 200)
    assert {r["type"] for r in landed(settings)} == {"track", "page"}


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_missing_or_unknown_key_is_401_and_nothing_is_stored(settings, tenant, collector, key):
    headers = auth(key) if key else {}
    response = httpx.post(f"{collector}/v1/batch", json={"batch": [event()]}, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_write_key"
    assert landed(settings) == []


def test_malformed_json_is_a_clear_400(settings, tenant, collector):
    response = httpx.post(
        f"{collector}/v1/batch", content=b'{"batch": [', headers=auth(tenant.write_key)
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"


def test_gzip_bodies_are_accepted(settings, tenant, collector):
    body = gzip.compress(json.dumps({"batch": [event()]}).encode())
    response = httpx.post(
        f"{collector}/v1/batch",
        content=body,
        headers={**auth(tenant.write_key), "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert len(landed(settings)) == 1


def test_bad_events_in_a_batch_are_quarantined_and_reported(settings, tenant, collector):
    good = event()
    bad = {
        "type": "track",
        "anonymousId": "a",
        "messageId": "bad-1",
        "traits": {"email": "ada@example.com"},
    }
    response = httpx.post(
        f"{collector}/v1/batch", json={"batch": [good, bad]}, headers=auth(tenant.write_key)
    )
    assert response.status_code == 200
    assert response.json()["rejected"] == [
        {
            "index": 1,
            "messageId": "bad-1",
            "reason": "'event' (a non-empty string) is required for track calls",
        }
    ]
    assert [r["message_id"] for r in landed(settings)] == [good["messageId"]]
    quarantined = landed(settings, "rejected")
    assert [r["message_id"] for r in quarantined] == ["bad-1"]
    assert "ada@example.com" not in quarantined[0]["payload"]


def test_oversized_body_is_413(settings, tenant, collector):
    big = {"batch": [event(properties={"blob": "x" * 600_000})]}
    response = httpx.post(f"{collector}/v1/batch", json=big, headers=auth(tenant.write_key))
    assert response.status_code == 413


def test_an_oversized_event_is_quarantined_and_its_batch_mates_kept(settings, tenant, collector):
    # 40 small events around one over 32 KiB as JSON, and one just under: the body is over
    # the per-event limit, so each event's size is checked (in runs, see maybe_oversized).
    batch = [event() for _ in range(40)]
    batch[17] = event(messageId="big", properties={"blob": "x" * 33_000})
    batch[30] = event(messageId="almost", properties={"blob": "x" * 32_000})
    response = httpx.post(
        f"{collector}/v1/batch", json={"batch": batch}, headers=auth(tenant.write_key)
    )
    assert response.status_code == 200
    assert response.json()["rejected"] == [
        {"index": 17, "messageId": "big", "reason": "event exceeds 32768 bytes"}
    ]
    assert len(landed(settings)) == 39
    assert [r["message_id"] for r in landed(settings, "rejected")] == ["big"]


def test_cors_preflight_allows_browser_sdks(collector):
    response = httpx.options(f"{collector}/v1/batch", headers={"Origin": "https://shop.example"})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"


def test_health_and_metrics(settings, tenant, collector):
    httpx.post(
        f"{collector}/v1/batch",
        json={"batch": [event(), {"type": "nope"}]},
        headers=auth(tenant.write_key),
    )
    assert httpx.get(f"{collector}/health").json()["status"] == "ok"
    metrics = httpx.get(f"{collector}/metrics").json()
    assert (metrics["events_stored"], metrics["events_quarantined"]) == (1, 1)
    assert metrics["compiled_row_pass"] is True  # every install builds the extension


def test_unmodified_segment_python_sdk_delivers(settings, tenant, collector):
    import segment.analytics as analytics

    client = analytics.Client(
        write_key=tenant.write_key, host=collector, sync_mode=True, max_retries=1
    )
    client.track(
        user_id="u-1", event="Order Completed", properties={"order_id": "o-1", "revenue": 12.5}
    )
    client.identify(user_id="u-1", traits={"email": "ada@example.com"})
    client.flush()
    rows = landed(settings)
    assert sorted(r["type"] for r in rows) == ["identify", "track"]
    order = next(r for r in rows if r["type"] == "track")
    assert (order["order_id"], order["revenue"], order["library"]) == (
        "o-1",
        12.5,
        "analytics-python",
    )
    assert "ada@example.com" not in json.dumps(rows)


def test_unmodified_segment_node_sdk_delivers(settings, tenant, collector):
    import shutil
    import subprocess

    from lakepulse.core.settings import PROJECT_ROOT

    sdk_dir = PROJECT_ROOT / "tests" / "sdk_node"
    assert shutil.which("node"), "node is needed for the npm SDK check (make test installs it)"
    assert (sdk_dir / "node_modules" / "@segment" / "analytics-node").exists(), (
        "run `make test` to npm ci"
    )
    subprocess.run(
        ["node", "send.mjs", collector, tenant.write_key], cwd=sdk_dir, check=True, timeout=60
    )
    rows = landed(settings)
    assert sorted(r["type"] for r in rows) == ["identify", "page", "track"]
    order = next(r for r in rows if r["type"] == "track")
    assert (order["order_id"], order["revenue"], order["currency"]) == ("node-o1", 30.5, "EUR")
    assert order["library"] == "@segment/analytics-node"
    page = next(r for r in rows if r["type"] == "page")
    assert page["page_url"] == "https://s.example/"
    assert "node@example.com" not in json.dumps(rows) and "x@y.z" not in json.dumps(rows)
    # The SDK's own shape (integrations, _metadata, library context) takes the compiled pass.
    assert httpx.get(f"{collector}/metrics").json()["events_compiled"] == 3


@pytest.mark.parametrize(
    ("route", "kind"),
    [
        (f"/v1/{kind[0]}", kind)
        for kind in ("track", "page", "identify", "screen", "group", "alias")
    ],
)
def test_analytics_js_short_routes_take_text_plain_with_the_key_in_the_body(
    settings, tenant, collector, route, kind
):
    # As analytics.js / analytics-next send them: text/plain (no CORS preflight), the event
    # itself as the body, the write key inside it.
    message = {
        "type": kind,
        "event": "Product Viewed",
        "anonymousId": "anon-1",
        "userId": "u-1",
        "previousId": "anon-0",
        "groupId": "g-1",
        "messageId": f"m-{kind}",
        "writeKey": tenant.write_key,
        "context": {"page": {"path": "/p", "url": "https://shop.example/p?email=a@b.co"}},
    }
    response = httpx.post(
        f"{collector}{route}",
        content=json.dumps(message),
        headers={"Content-Type": "text/plain", "Origin": "https://shop.example"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    [row] = landed(settings)
    assert (row["type"], row["message_id"], row["page_path"]) == (kind, f"m-{kind}", "/p")
    assert row["page_url"] == "https://shop.example/p"
    assert tenant.write_key not in json.dumps(landed(settings))


def test_analytics_next_batch_route_and_beacon_bodies(settings, tenant, collector):
    # /v1/b is analytics-next's batching dispatcher: {writeKey, batch, sentAt}; a beacon sends
    # the same as text/plain;charset=UTF-8 with no other header.
    body = {
        "writeKey": tenant.write_key,
        "batch": [event(), event()],
        "sentAt": "2026-11-30T10:00:00Z",
    }
    response = httpx.post(
        f"{collector}/v1/b",
        content=json.dumps(body),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert response.status_code == 200, response.text
    assert sorted(r["message_id"] for r in landed(settings)) == sorted(
        e["messageId"] for e in body["batch"]
    )


def test_cors_preflight_allows_what_analytics_next_asks_for(collector):
    response = httpx.options(
        f"{collector}/v1/t",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-retry-count",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-headers"] == (
        "authorization,content-type,x-retry-count"
    )
    assert response.headers["access-control-allow-private-network"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]


def test_project_settings_point_analytics_js_back_at_the_collector(tenant, collector):
    response = httpx.get(f"{collector}/v1/projects/{tenant.write_key}/settings")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    segment = response.json()["integrations"]["Segment.io"]
    host = collector.removeprefix("http://")
    assert segment == {
        "apiKey": tenant.write_key,
        "apiHost": f"{host}/v1",
        "protocol": "http",
        "addBundledMetadata": True,
        "unbundledIntegrations": [],
        "maybeBundledConfigIds": {},
    }
    assert response.json()["metrics"] == {"sampleRate": 0}
    assert response.json()["remotePlugins"] == []
    metrics = httpx.post(f"{collector}/v1/m", content='{"series": []}')  # SDK's own, dropped
    assert metrics.status_code == 200
    behind_tls = httpx.get(
        f"{collector}/v1/projects/{tenant.write_key}/settings",
        headers={"Host": "collect.shop.example", "X-Forwarded-Proto": "https"},
    ).json()["integrations"]["Segment.io"]
    assert (behind_tls["apiHost"], behind_tls["protocol"]) == ("collect.shop.example/v1", "https")
    unknown = httpx.get(f"{collector}/v1/projects/nope/settings")
    assert unknown.status_code == 401 and unknown.json()["code"] == "invalid_write_key"


def test_one_batch_through_both_passes_keeps_its_order(settings, tenant, collector):
    """The compiled pass takes the usual events; one with a number as userId (read by the
    interpreted contract) and one breaking the contract are handled in place: rows in the
    order sent, the rejection reported by index, and /metrics counting the compiled ones."""
    batch = [
        event(messageId="c-1", properties={"n": 1}),
        event(messageId="i-2", userId=42, properties={"n": 2}),
        event(messageId="r-3", event=""),
        event(messageId="c-4", properties={"contact": "ada@example.com"}),
    ]
    response = httpx.post(
        f"{collector}/v1/batch", json={"batch": batch}, headers=auth(tenant.write_key)
    )
    assert response.status_code == 200
    assert [r["index"] for r in response.json()["rejected"]] == [2]
    rows = landed(settings)
    assert [(r["message_id"], r.get("user_id")) for r in rows] == [
        ("c-1", None),
        ("i-2", "42"),
        ("c-4", None),
    ]
    assert "ada@example.com" not in rows[2]["properties"]
    assert httpx.get(f"{collector}/metrics").json()["events_compiled"] == 2
