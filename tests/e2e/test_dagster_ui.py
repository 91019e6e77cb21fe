"""The Dagster UI as operators see it, in a real headless browser (Debian's Chromium driven by
Playwright): the asset graph renders with the dlt and dbt layers, and a check result shows on
bronze. Screenshots are kept in test-artifacts/."""

import os
import shutil
import subprocess
import sys
import time

import dagster as dg
import httpx
import pytest

from ingestion.tenants import TenantRegistry
from lakepulse.core.dagster_instance import ensure_instance
from lakepulse.core.settings import PROJECT_ROOT
from lakepulse.demo.simulator import Faults
from lakepulse.warehouse.postgres import free_port
from orchestration.definitions import build_definitions
from tests.conftest import land_simulated

pytestmark = pytest.mark.e2e

VIEWPORT = (1600, 1000)

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
# As root, in a sandbox with no internet: no sandbox, no background calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def wait_for(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def wait_for_lines(page, lines: set[str], seconds: float = 90) -> str:
    """The page's text once every one of ``lines`` is a line of it (graph nodes render late)."""
    deadline = time.monotonic() + seconds
    text = ""
    while time.monotonic() < deadline:
        dismiss_welcome(page)  # it may pop up at any moment of the first visit
        text = page.inner_text("body")
        if lines <= {line.strip() for line in text.splitlines()}:
            return text
        page.wait_for_timeout(500)
    page.screenshot(path=ARTIFACTS / "dagster-timeout.png")
    missing = lines - {line.strip() for line in text.splitlines()}
    raise AssertionError(f"not shown after {seconds} s: {sorted(missing)}")


def dismiss_welcome(page) -> None:
    """Dagster greets a new browser with a newsletter dialog; skip it."""
    skip = page.get_by_role("button", name="Skip")
    if skip.count() and skip.first.is_visible():
        skip.first.click()


def test_asset_graph_and_check_results_render_in_chromium(settings, monkeypatch):
    assert shutil.which(CHROMIUM), "Debian's chromium is missing: `make test` installs it"
    from playwright.sync_api import sync_playwright

    registry = TenantRegistry(settings.tenants_file)
    registry.add("acme")
    registry.add("globex")
    land_simulated(settings, 2_000, faults=Faults(), count=False)
    ensure_instance(settings)
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        definitions = build_definitions(settings)
        job = definitions.resolve_job_def("ingest_and_build")
        assert job.execute_in_process(instance=instance).success
        # Then the pipeline worker, as its sensor runs it, for a few cycles on new traffic.
        land_simulated(settings, 1_000, seed=21, faults=Faults(), count=False)
        worker = definitions.resolve_job_def("pipeline_worker")
        config = {"ops": {"pipeline_worker_op": {"config": {"minutes": 0.3}}}}
        assert worker.execute_in_process(instance=instance, run_config=config).success

    port = free_port()
    ui = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "dagster-webserver"),
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env=settings.process_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        wait_for(f"{ui}/server_info")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]})

            # A mart's upstream lineage: landing log -> dlt bronze -> dbt staging -> dbt mart.
            page.goto(
                f"{ui}/assets/mart_event_volume?view=lineage&lineageScope=upstream&lineageDepth=4",
                wait_until="networkidle",
            )
            dismiss_welcome(page)
            shown = wait_for_lines(
                page,
                # groups by layer, then the nodes, with the dlt and dbt kinds
                {"landing", "bronze", "staging", "marts"}
                | {"log", "events", "stg_events", "mart_event_volume", "dlt", "dbt"},
            )
            page.screenshot(path=ARTIFACTS / "dagster-asset-graph.png")
            assert "Never materialized" not in shown  # the run's materializations show

            # The blocking great-expectations check on bronze, with its result.
            page.goto(f"{ui}/assets/raw/events?view=checks", wait_until="networkidle")
            dismiss_welcome(page)
            wait_for_lines(
                page, {"bronze_events_quality", "This is a blocking asset check.", "Passed"}
            )
            page.screenshot(path=ARTIFACTS / "dagster-bronze-checks.png")

            # The worker's materializations of a live mart, each with its tier.
            page.goto(f"{ui}/assets/mart_event_volume?view=events", wait_until="networkidle")
            dismiss_welcome(page)
            wait_for_lines(page, {"tier", "live", "tier_build_s"})
            page.screenshot(path=ARTIFACTS / "dagster-worker.png")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    # The proof is the lines waited for above; the screenshot is their record: a PNG of the
    # whole viewport.
    png = (ARTIFACTS / "dagster-asset-graph.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert (int.from_bytes(png[16:20]), int.from_bytes(png[20:24])) == VIEWPORT
