"""The collector when its storage fails: a landing directory that is full or read-only (a real
tmpfs, filled or remounted read-only: chmod does not stop root) answers 503 with nothing
acknowledged and nothing half-written, and the collector recovers, with no restart, when the
storage comes back. And several workers' counters add up on /metrics."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import uuid

import httpx
import orjson
import pytest

from ingestion.landing import LandingLog
from lakepulse.core.settings import PROJECT_ROOT
from tests.conftest import wait_for_http
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def batch(events: int, padding: int = 0) -> list[dict]:
    return [
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": "a",
            "messageId": str(uuid.uuid4()),
            "properties": {"note": "x" * padding},
        }
        for _ in range(events)
    ]


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def small_landing(settings):
    """The landing directory on its own 1 MiB tmpfs."""
    target = settings.landing_dir
    target.mkdir(parents=True, exist_ok=True)
    try:
        mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target))
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        pytest.skip(f"cannot mount a tmpfs here: {err}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.fixture
def collector_on(small_landing, collector):
    """The real collector, started after its landing directory became the small tmpfs."""
    yield collector


def landed(settings) -> list[str]:
    """messageIds of every published landing file; each file must parse whole."""
    ids = []
    for f in LandingLog(settings.landing_dir).files():
        ids += [orjson.loads(line)["message_id"] for line in f.path.read_bytes().splitlines()]
    return ids


def leftovers(root) -> list[str]:
    return [name for _, _, names in os.walk(root) for name in names if name.startswith(".")]


def fill(path, keep_free: int) -> None:
    """Fill the filesystem of ``path`` until ``keep_free`` bytes (about) are left."""
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize
    with open(path / "filler", "wb") as filler:
        filler.write(b"\0" * max(0, free - keep_free))
        filler.flush()
        os.fsync(filler.fileno())


@pytest.mark.serial
def test_a_full_landing_disk_answers_503_stores_nothing_and_recovers(
    settings, tenant, collector_on
):
    url, headers = f"{collector_on}/v1/batch", auth(tenant.write_key)
    first = batch(5)
    assert httpx.post(url, json={"batch": first}, headers=headers).status_code == 200

    # 64 KiB left; the batch needs about 200 KiB: the write starts, then the disk is full.
    fill(settings.landing_dir, keep_free=64 * 1024)
    refused = batch(100, padding=2000)
    response = httpx.post(url, json={"batch": refused}, headers=headers, timeout=60)
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "storage_unavailable"
    assert "retry" in response.json()["message"]
    assert sorted(landed(settings)) == sorted(m["messageId"] for m in first)
    assert leftovers(settings.landing_dir) == []  # no half-written file, even a hidden one

    # Space again: the SDK's retry of the same batch is stored, once, by the same process.
    (settings.landing_dir / "filler").unlink()
    assert httpx.post(url, json={"batch": refused}, headers=headers).status_code == 200
    expected = [m["messageId"] for m in first + refused]
    assert sorted(landed(settings)) == sorted(expected)
    metrics = httpx.get(f"{collector_on}/metrics").json()
    assert metrics["events_stored"] == len(expected)
    assert metrics["http_errors"] == {"http_503": 1}


@pytest.mark.serial
def test_a_read_only_landing_disk_answers_503_and_recovers(settings, tenant, collector_on):
    url, headers = f"{collector_on}/v1/batch", auth(tenant.write_key)
    first = batch(5)
    assert httpx.post(url, json={"batch": first}, headers=headers).status_code == 200

    mount("-o", "remount,ro", str(settings.landing_dir))
    refused = batch(10)
    response = httpx.post(url, json={"batch": refused}, headers=headers)
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "storage_unavailable"
    assert sorted(landed(settings)) == sorted(m["messageId"] for m in first)

    mount("-o", "remount,rw", str(settings.landing_dir))
    assert httpx.post(url, json={"batch": refused}, headers=headers).status_code == 200
    assert sorted(landed(settings)) == sorted(m["messageId"] for m in first + refused)
    assert leftovers(settings.landing_dir) == []


@pytest.mark.serial
def test_several_workers_counters_add_up(settings, tenant, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "lakepulse.cli", "collect", "--workers", "2"],
        env=settings.process_env(),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the workers with it, to kill them all at the end
    )
    sent = 0
    try:
        wait_for_http(f"{settings.collector_url}/health", process=proc)
        url, headers = f"{settings.collector_url}/v1/batch", auth(tenant.write_key)

        def counts() -> dict[int, int]:
            published = {}
            for path in settings.metrics_dir.glob("*.json"):
                published[int(path.stem)] = orjson.loads(path.read_bytes()).get("requests", 0)
            return published

        # Until both workers have answered some (each accepts on the shared port).
        def both_served() -> bool:
            nonlocal sent
            with httpx.Client() as http:  # a new connection: either worker may take it
                assert http.post(url, json={"batch": batch(3)}, headers=headers).status_code == 200
            sent += 1
            return len([n for n in counts().values() if n > 0]) >= 2

        wait_until(both_served, "both workers to answer requests")
        # Each worker publishes its counters every second; /metrics sums the live ones.
        wait_until(lambda: sum(counts().values()) == sent, "both workers to publish counters")
        metrics = httpx.get(f"{settings.collector_url}/metrics").json()
        assert metrics["requests"] == sent
        assert metrics["events_accepted"] == metrics["events_stored"] == 3 * sent
        assert len(landed(settings)) == 3 * sent
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
