"""A storefront as users build one: the unmodified Segment browser SDK (``@segment/analytics-next``
from npm, pinned in tests/browser_sdk/package-lock.json, bundled by esbuild here) on a page of
another origin, in Debian's Chromium driven by Playwright, sending to the real collector. What
the SDK says it delivered must be in bronze exactly once, with page context and no raw PII."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from ingestion.tenants import TenantRegistry
from lakepulse.core.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
SDK_DIR = PROJECT_ROOT / "tests" / "browser_sdk"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
# A phone's user agent: the device class in bronze must come from what the browser sends.
MOBILE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
PII = {"email": "ada.lovelace@example.com", "phone": "+44 20 7946 0958", "name": "Ada Lovelace"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """analytics-next bundled into one IIFE, as a storefront's build would (no CDN)."""
    esbuild = SDK_DIR / "node_modules" / ".bin" / "esbuild"
    assert esbuild.exists(), "run `make test` (npm ci in tests/browser_sdk)"
    out = tmp_path_factory.mktemp("bundle") / "segment.js"
    subprocess.run(
        [
            str(esbuild),
            "storefront.mjs",
            "--bundle",
            "--format=iife",
            "--platform=browser",
            "--define:process.env.NODE_ENV='production'",
            f"--outfile={out}",
            "--log-level=warning",
        ],
        cwd=SDK_DIR,
        check=True,
        timeout=60,
    )
    return out


class Storefront:
    """A shop on its own origin (``localhost:<port>``, the collector is ``127.0.0.1:<port>``):
    each path renders the page template with the SDK configuration the test chose for it."""

    def __init__(self, bundle: Path):
        self.pages: dict[str, dict] = {}
        template = (SDK_DIR / "storefront.html").read_text()
        script = bundle.read_bytes()
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/segment.js":
                    self._send(script, "text/javascript")
                elif path in pages:
                    page = pages[path]
                    html = template.replace("__TITLE__", page["title"]).replace(
                        "__CONFIG__", json.dumps(page["config"])
                    )
                    self._send(html.encode(), "text/html; charset=utf-8")
                else:
                    self._send(b"<!doctype html><title>elsewhere</title>", "text/html")

            def _send(self, body: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://localhost:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def storefront(bundle: Path) -> Iterator[Storefront]:
    shop = Storefront(bundle)
    yield shop
    shop.close()


def wait_until_stored(collector: str, count: int, seconds: float = 30) -> None:
    """The collector's own count of durably stored events (beacons arrive after the page)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if httpx.get(f"{collector}/metrics").json()["events_stored"] >= count:
            return
        time.sleep(0.2)
    stored = httpx.get(f"{collector}/metrics").json()["events_stored"]
    raise AssertionError(f"{stored} of {count} events stored after {seconds} s")


def landed_ids(settings) -> list[str]:
    """Message ids in the landing log (to show which events are missing)."""
    from ingestion.landing import LandingLog

    return [
        json.loads(line)["message_id"]
        for f in LandingLog(settings.landing_dir).files("events")
        for line in f.path.read_bytes().splitlines()
    ]


def test_segment_browser_sdk_on_another_origin_lands_every_event_once(
    settings, tenant, collector, storefront, workspace
):
    assert shutil.which(CHROMIUM), "Debian's chromium is missing: `make test` installs it"
    from playwright.sync_api import sync_playwright

    collector_origin = collector  # http://127.0.0.1:<port>: another origin than the shop's
    beacon_id = f"beacon-{uuid.uuid4()}"
    storefront.pages["/"] = {
        "title": "Winter Shop",
        "config": {
            "collector": collector_origin,
            "writeKey": tenant.write_key,
            "mode": "cdnURL",
            "calls": [
                ["page"],
                ["identify", "u-42", {**PII, "plan": "gold"}],
                ["track", "Product Viewed", {"product_id": "sku-1", "price": 30}],
                ["track", "Order Completed", {"order_id": "o-1", "revenue": 30, "currency": "EUR"}],
            ],
        },
    }
    storefront.pages["/cart"] = {
        "title": "Your Cart",
        "config": {
            "collector": collector_origin,
            "writeKey": tenant.write_key,
            "mode": "cdnSettings",  # batching: nothing leaves until the page is left
            "calls": [["page"], ["track", "Cart Viewed", {"cart_id": "c-1"}]],
            "beacon": beacon_id,
        },
    }
    outside: list[str] = []
    with sync_playwright() as p:
        # The browser's own user agent (a flag, so the unloading page has it too).
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--user-agent={MOBILE_UA}"]
        )
        context = browser.new_context()

        def note_outside(request) -> None:
            if urlsplit(request.url).hostname not in ("localhost", "127.0.0.1"):
                outside.append(request.url)  # a CDN or Segment's API: the test fails

        # Observed, not intercepted: Playwright's routing would hold the unload's keepalive
        # request; the resolver rule keeps any other host from being reached at all.
        context.on("request", note_outside)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        landing = (
            f"{storefront.origin}/?utm_source=newsletter&utm_medium=email&email={PII['email']}"
        )
        page.goto(landing, referer="https://search.example/q?x=1")
        page.evaluate("window.done")
        home_sent, home_failed = page.evaluate("[window.sent, window.failed]")
        with page.expect_navigation():
            page.click("#cart")  # a same-origin link: the referrer is the landing URL
        page.evaluate("window.done")
        cart_sent, cart_failed = page.evaluate("[window.sent, window.failed]")
        page.on("requestfailed", lambda r: errors.append(f"{r.url}: {r.failure}"))
        page.goto(f"{storefront.origin}/elsewhere")  # pagehide: batch flush + sendBeacon
        expected = set(home_sent) | set(cart_sent) | {beacon_id}
        try:
            wait_until_stored(collector, len(expected))
        except AssertionError as err:
            missing = expected - set(landed_ids(settings))
            raise AssertionError(f"{err}; missing {missing}; page errors {errors}") from None
        finally:
            context.close()
            browser.close()

    assert outside == [], f"the page reached outside the machine: {outside}"
    assert (home_failed, cart_failed) == ([], []), errors
    assert len(home_sent) == 4 and len(cart_sent) == 2

    workspace.ingest()
    bronze = workspace.bronze("events").to_pylist()
    ids = [row["message_id"] for row in bronze]
    assert sorted(ids) == sorted(expected), "every event the SDK sent, each exactly once"
    rows = {row["message_id"]: row for row in bronze}

    home_page = rows[home_sent[0]]
    assert home_page["type"] == "page" and home_page["library"] == "analytics.js"
    assert home_page["page_path"] == "/" and home_page["page_title"] == "Winter Shop"
    assert home_page["page_url"] == f"{storefront.origin}/?utm_source=newsletter&utm_medium=email"
    assert home_page["page_referrer"] == "https://search.example/q?x=1"
    assert (home_page["utm_source"], home_page["utm_medium"]) == ("newsletter", "email")
    assert {row["device_class"] for row in bronze} == {"mobile"}
    identify = rows[home_sent[1]]
    traits = json.loads(identify["traits"])
    assert identify["user_id"] == "u-42" and traits["plan"] == "gold"
    assert traits["email"] == hmac_sha256(tenant_secret(settings), "ada.lovelace@example.com")
    assert traits["phone"] == hmac_sha256(tenant_secret(settings), "+442079460958")
    assert "name" not in traits
    order = rows[home_sent[3]]
    assert (order["event"], order["order_id"], order["revenue"]) == ("Order Completed", "o-1", 30)
    cart_page = rows[cart_sent[0]]
    assert (cart_page["page_path"], cart_page["page_title"]) == ("/cart", "Your Cart")
    assert (
        cart_page["page_referrer"] == f"{storefront.origin}/?utm_source=newsletter&utm_medium=email"
    )
    beacon = rows[beacon_id]
    assert (beacon["event"], beacon["page_path"]) == ("Checkout Abandoned", "/cart")

    everything = json.dumps(bronze, default=str)
    rejected = workspace.bronze("events_rejected").to_pylist() if has_rejected(settings) else []
    everything += json.dumps(rejected, default=str)
    for raw in [*PII.values(), "beacon@example.com", "Lovelace", tenant.write_key]:
        assert raw not in everything, f"raw {raw!r} reached bronze"


def hmac_sha256(secret: bytes, normalised: str) -> str:
    """The documented rule written out (not ``hash_pii``): HMAC-SHA256 with the tenant's
    secret of the normalised value (lower-cased e-mail; a phone's + and digits)."""
    return hmac.new(secret, normalised.encode(), hashlib.sha256).hexdigest()


def tenant_secret(settings) -> bytes:
    return TenantRegistry(settings.tenants_file).get("acme").secret


def has_rejected(settings) -> bool:
    return (settings.lake_dir / "raw" / "events_rejected" / "_delta_log").exists()


def test_rudderstack_browser_sdk_lands_every_event_once(
    settings, tenant, collector, storefront, workspace
):
    """RudderStack's v3 SDK (its "bundled" build, source config given inline): XHR delivery
    to /v1/page, /v1/identify, /v1/track on one page; sendBeacon delivery to
    /beacon/v1/batch, flushed when the next page is left."""
    from playwright.sync_api import sync_playwright

    def rudder_page(title: str, calls: list, beacon: bool) -> dict:
        return {
            "title": title,
            "config": {
                "collector": collector,
                "writeKey": tenant.write_key,
                "mode": "rudderstack",
                "rudderBeacon": beacon,
                "calls": calls,
            },
        }

    storefront.pages["/"] = rudder_page(
        "Rudder Shop",
        [["page"], ["identify", "u-7", {**PII, "plan": "gold"}], ["track", "Product Viewed"]],
        beacon=False,
    )
    storefront.pages["/cart"] = rudder_page(
        "Rudder Cart", [["page"], ["track", "Cart Viewed", {"cart_id": "c-9"}]], beacon=True
    )
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--user-agent={MOBILE_UA}"]
        )
        context = browser.new_context()
        context.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if urlsplit(r.url).hostname not in ("localhost", "127.0.0.1")
                else None
            ),
        )
        page = context.new_page()
        page.goto(f"{storefront.origin}/?utm_campaign=spring&utm_source=ads")
        page.evaluate("window.done")
        wait_until_stored(collector, 3)  # XHR delivery, one request per event
        with page.expect_navigation():
            page.click("#cart")
        page.evaluate("window.done")
        page.goto(f"{storefront.origin}/elsewhere")  # pagehide: the beacon queue flushes
        try:
            wait_until_stored(collector, 5)
        finally:
            context.close()
            browser.close()

    assert outside == [], f"the page reached outside the machine: {outside}"
    workspace.ingest()
    bronze = workspace.bronze("events").to_pylist()
    assert sorted((r["type"], r["event"] or "", r["page_path"]) for r in bronze) == [
        ("identify", "", "/"),
        ("page", "", "/"),
        ("page", "", "/cart"),
        ("track", "Cart Viewed", "/cart"),
        ("track", "Product Viewed", "/"),
    ], "every event once"
    assert {r["library"] for r in bronze} == {"RudderLabs JavaScript SDK"}
    assert {r["device_class"] for r in bronze} == {"mobile"}
    home = next(r for r in bronze if r["type"] == "page" and r["page_path"] == "/")
    assert home["page_title"] == "Rudder Shop" and home["page_referrer"] is None
    assert (home["utm_campaign"], home["utm_source"]) == ("spring", "ads")
    cart = next(r for r in bronze if r["type"] == "page" and r["page_path"] == "/cart")
    assert cart["page_referrer"] == f"{storefront.origin}/?utm_campaign=spring&utm_source=ads"
    identify = next(r for r in bronze if r["type"] == "identify")
    traits = json.loads(identify["traits"])
    assert traits["email"] == hmac_sha256(tenant_secret(settings), "ada.lovelace@example.com")
    assert "name" not in traits and traits["plan"] == "gold"
    everything = json.dumps(bronze, default=str)
    for raw in [*PII.values(), "Lovelace", tenant.write_key]:
        assert raw not in everything, f"raw {raw!r} reached bronze"
