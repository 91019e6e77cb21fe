"""Anomaly alerts through the real pipeline: simulated traffic -> landing -> bronze -> dbt
(mart_conversion_windows) -> the Dagster sensor -> Delta alert table, webhook, and the BI mart.

A planted conversion drop (a broken checkout from a given minute) raises an alert within 3
minutes of simulated time; a seeded simulated day of normal traffic raises none."""

import json
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest
from deltalake import DeltaTable

from lakepulse.analytics.anomaly import DetectorSettings, detect
from lakepulse.demo.simulator import Faults
from lakepulse.warehouse.alerts import read_minutes
from lakepulse.warehouse.postgres import free_port
from orchestration.sensors import build_anomaly_sensor
from tests.conftest import SIM_CLOCK, land_simulated

pytestmark = pytest.mark.integration

WINDOWS = ("--select", "+mart_conversion_windows")


class Webhook:
    """A real HTTP endpoint that records what the sensor posts (Slack-style JSON)."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def tick(settings, cursor=None):
    """One evaluation of the sensor, as the daemon would run it."""
    sensor = build_anomaly_sensor(settings)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, cursor=cursor)
        result = sensor(context)
        if isinstance(result, dg.SensorResult) and result.cursor:
            return result, result.cursor
        return result, context.cursor


def test_a_planted_conversion_drop_alerts_within_three_minutes(settings, workspace, monkeypatch):
    hook = Webhook()
    monkeypatch.setenv("LAKEPULSE_ALERT_WEBHOOK_URL", hook.url)
    drop_at = SIM_CLOCK + timedelta(minutes=65)
    land_simulated(
        settings,
        None,
        per_file=2000,
        visits_per_second=10,
        until=SIM_CLOCK + timedelta(minutes=75),
        faults=Faults(conversion_drop_at=drop_at, conversion_drop_factor=0.2),
        count=False,
    )
    workspace.ingest()
    workspace.build(*WINDOWS)

    result, cursor = tick(settings)
    assert isinstance(result, dg.SensorResult), result
    alerts = [e.metadata for e in result.asset_events]
    conversion = {a["tenant_id"].value: a for a in alerts if a["metric"].value == "conversion_rate"}
    assert set(conversion) == {"acme", "globex"}
    for alert in conversion.values():
        delay = (datetime.fromisoformat(alert["minute_at"].value) - drop_at).total_seconds()
        assert 0 <= delay <= 180, f"alert {delay:.0f} s after the drop"
        assert alert["relative_change"].value < -0.3

    stored = DeltaTable(str(settings.alerts_path)).to_pyarrow_table().to_pylist()
    assert {(r["tenant_id"], r["metric"]) for r in stored} >= {
        ("acme", "conversion_rate"),
        ("globex", "conversion_rate"),
    }
    assert len(hook.received) == len(stored)
    assert all("dropped" in post["text"] for post in hook.received)
    hook.close()

    # The next tick has nothing new: one incident, one alert (cooldown, cursor).
    again, _ = tick(settings, cursor)
    assert isinstance(again, dg.SkipReason)

    workspace.build("--select", "mart_anomaly_alerts")
    assert workspace.sql("select count(*) from marts.mart_anomaly_alerts")[0][0] == len(stored)


def test_a_simulated_day_of_normal_traffic_raises_no_alert(settings, workspace):
    # One busy shop (checkout completes often), so that nearly every minute has enough
    # converting visitors for a drop to be detectable: a quiet day would prove nothing.
    land_simulated(
        settings,
        None,
        per_file=5000,
        seed=21,
        visits_per_second=2,
        until=SIM_CLOCK + timedelta(days=1),
        faults=Faults(),
        count=False,
        tenants={"acme": "k1"},
        purchase_rate=0.9,
    )
    workspace.ingest()
    workspace.build(*WINDOWS)
    result, _ = tick(settings)
    assert isinstance(result, dg.SkipReason), [e.description for e in result.asset_events]

    stats: dict[str, int] = {}
    minutes = read_minutes(settings.replica_path, None, DetectorSettings())
    alerts, _, _ = detect(minutes, stats=stats)
    assert alerts == []
    assert stats["minutes"] >= 24 * 60 - 70  # every minute after the first hour's baseline
    assert stats["testable"] >= 0.95 * stats["minutes"], stats
