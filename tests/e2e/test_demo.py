"""`lakepulse demo` (what `make demo` runs): within 3 minutes and without a click, the sensor
has loaded simulated traffic into Delta and dbt has built the marts; Dagster shows the asset
graph with materializations; Ctrl-C stops every process it started."""

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import psycopg
import pytest

from lakepulse.core.settings import PROJECT_ROOT, Settings
from tests.conftest import free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.serial]

GRAPH = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"
LATEST = """query($path: [String!]!) { assetOrError(assetKey: {path: $path}) {
  ... on Asset { assetMaterializations(limit: 1) { runId timestamp } } } }"""


def graphql(ui: str, query: str, **variables) -> dict:
    response = httpx.post(
        f"{ui}/graphql", json={"query": query, "variables": variables}, timeout=30
    )
    response.raise_for_status()
    return response.json()["data"]


def materialized(ui: str, *path: str) -> bool:
    data = graphql(ui, LATEST, path=list(path))["assetOrError"]
    return bool(data.get("assetMaterializations"))


# A timeout, not a target (bench_freshness measures how fresh the marts are): the first run
# waits for the sensor's first tick and builds every model from nothing, which on a loaded
# 2-core machine once took over 180 s.
FIRST_MARTS_TIMEOUT_S = 360


def test_demo_builds_marts_and_stops_cleanly(tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEPULSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("LAKEPULSE_COLLECTOR_PORT", str(free_port()))
    monkeypatch.setenv("LAKEPULSE_DAGSTER_PORT", str(free_port()))
    monkeypatch.setenv("LAKEPULSE_PG_PORT", str(free_port()))
    sink_port = free_port()
    monkeypatch.setenv("LAKEPULSE_SINK_PORT", str(sink_port))
    monkeypatch.delenv("LAKEPULSE_PG_URL", raising=False)
    settings = Settings.from_env()
    ui = f"http://127.0.0.1:{settings.dagster_port}"
    out_path = tmp_path / "demo.out"
    with open(out_path, "w") as out:  # the child keeps its own copy of the descriptor
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lakepulse.cli",
                "demo",
                "--rate",
                "30",
                "--no-bi",
                "--no-history",
            ],
            cwd=PROJECT_ROOT,
            env=settings.process_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    seen: set[int] = set()
    started = time.monotonic()
    try:
        ok = False
        while time.monotonic() - started < FIRST_MARTS_TIMEOUT_S and demo.poll() is None:
            try:
                seen |= {p.pid for p in psutil.Process(demo.pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                break
            try:
                ok = all(
                    materialized(ui, *key)
                    for key in (
                        ["raw", "events"],
                        ["stg_events"],
                        ["mart_event_volume"],
                        ["postgres", "marts"],
                    )
                )
            except httpx.HTTPError:
                ok = False
            if ok:
                break
            time.sleep(3)
        banner = out_path.read_text()
        assert ok, (
            f"no successful materializations within {FIRST_MARTS_TIMEOUT_S} s; "
            f"demo output:\n{banner}"
        )
        assert settings.collector_url in banner and ui in banner
        # The local webhook sink every trigger destination posts to in the demo: it answers.
        sink_url = f"http://127.0.0.1:{sink_port}/hook"
        assert f"webhook     {sink_url}" in banner
        assert httpx.post(sink_url, json={"trigger": "probe"}).status_code == 401  # unsigned

        # The graph Dagster shows: landing -> dlt (raw/events) -> dbt staging -> mart.
        nodes = {
            "/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]}
            for n in graphql(ui, GRAPH)["assetNodes"]
        }
        assert nodes["raw/events"] == {"landing/log"}
        assert nodes["stg_events"] == {"raw/events"}
        assert nodes["mart_event_volume"] == {"stg_events"}

        # The mart really has the simulated traffic in it.
        from lakepulse.warehouse.replica import explorer

        for _ in range(30):
            conn, notes = explorer(settings)
            if not notes:
                break
            conn.close()
            time.sleep(1)
        total = conn.sql("select sum(events) from marts.mart_event_volume").fetchone()[0]
        conn.close()
        assert total > 0

        # BI reads the published marts over TCP with a tenant login, and sees only its tenant.
        logins = json.loads((settings.home / "postgres" / "bi_logins.json").read_text())
        port = int(os.environ["LAKEPULSE_PG_PORT"])
        with psycopg.connect(
            host="127.0.0.1",
            port=port,
            dbname="postgres",
            user=logins["acme"]["user"],
            password=logins["acme"]["password"],
        ) as pg:
            tenants = pg.execute(
                "select distinct tenant_id from marts.mart_event_volume"
            ).fetchall()
        assert tenants == [("acme",)]
        assert f"port {port}" in banner and logins["acme"]["password"] in banner
    finally:
        seen |= (
            {p.pid for p in psutil.Process(demo.pid).children(recursive=True)}
            if demo.poll() is None
            else set()
        )
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    assert demo.returncode == 0, out_path.read_text()[-3000:]

    def leftovers() -> list[int]:
        alive = []
        for p in seen:
            try:
                if psutil.Process(p).status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        return alive

    # Children reaped by their parents a moment after the demo itself exits: wait for it.
    try:
        wait_until(lambda: not leftovers(), "the demo's processes to exit", timeout=60)
    except TimeoutError:
        pytest.fail(f"processes still running after Ctrl-C: {leftovers()}")
    pgdata = str(settings.home / "postgres" / "data")
    servers = [
        p for p in psutil.process_iter(["cmdline"]) if pgdata in " ".join(p.info["cmdline"] or [])
    ]
    assert servers == [], "the demo's PostgreSQL is still running"
