"""Anomaly alerts through the real pipeline: simulated traffic -> landing -> bronze -> dbt
(mart_conversion_windows -> the `anomaly` trigger kind) -> `lakepulse triggers fire` ->
fct_trigger_firings and the BI mart mart_anomaly_alerts.

A planted conversion drop (a broken checkout from a given minute) fires within 3 minutes of
simulated time, at the minute the reference detector (lakepulse/anomaly.py) flags; a seeded
simulated day of normal traffic fires none."""

import json
from datetime import timedelta

import pytest
from deltalake import DeltaTable

from lakepulse.analytics.anomaly import DetectorSettings, detect
from lakepulse.demo.simulator import Faults
from lakepulse.triggers.definitions import install
from lakepulse.triggers.firing import fire
from lakepulse.warehouse.alerts import read_minutes
from tests.conftest import SIM_CLOCK, land_simulated

pytestmark = pytest.mark.integration

TRIGGERS = """
version: 1
triggers:
  - {name: conversion_anomaly, kind: anomaly, cooldown_hours: 0.5}
"""
BUILD = ("--select", "+trigger_anomaly", "fct_trigger_firings", "mart_anomaly_alerts")


@pytest.fixture(autouse=True)
def anomaly_trigger(settings, tmp_path, monkeypatch):
    path = tmp_path / "triggers.yml"
    path.write_text(TRIGGERS)
    monkeypatch.setenv("LAKEPULSE_TRIGGERS_FILE", str(path))
    assert install(settings).error is None


def anomaly_firings(settings) -> list[dict]:
    rows = DeltaTable(str(settings.trigger_firings_path)).to_pyarrow_table().to_pylist()
    return [r | {"payload": json.loads(r["payload"])} for r in rows]


def test_a_planted_conversion_drop_alerts_within_three_minutes(settings, workspace):
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
    workspace.build(*BUILD)
    result = fire(settings)
    assert result.outcomes["conversion_anomaly"].fired

    firings = anomaly_firings(settings)
    conversion = {r["tenant_id"]: r for r in firings if r["payload"]["metric"] == "conversion_rate"}
    assert set(conversion) == {"acme", "globex"}
    # The reference detector flags the same first minute per tenant (its own cooldown too).
    reference, _, _ = detect(read_minutes(settings.replica_path, None, DetectorSettings()))
    first = {}
    for alert in reference:
        if alert.metric == "conversion_rate" and alert.minute_at >= drop_at - timedelta(hours=1):
            first.setdefault(alert.tenant_id, alert)
    for tenant, firing in conversion.items():
        delay = (firing["occurred_at"] - drop_at).total_seconds()
        assert 0 <= delay <= 180, f"alert {delay:.0f} s after the drop"
        assert firing["payload"]["relative_change"] < -0.3
        assert firing["user_id"] is None and "dropped" in firing["payload"]["message"]
        assert firing["occurred_at"] == first[tenant].minute_at
        assert firing["payload"]["z_score"] == pytest.approx(first[tenant].z_score)

    # The next run has nothing new: one incident, one alert (cooldown, firing ids).
    assert fire(settings).outcomes["conversion_anomaly"].fired == []
    workspace.build("--select", "fct_trigger_firings", "mart_anomaly_alerts")
    [(alerts,)] = workspace.sql("select count(*) from marts.mart_anomaly_alerts")
    assert alerts == len(firings)
    assert workspace.sql(
        "select count(*) from marts.mart_anomaly_alerts where metric = 'conversion_rate' "
        "and relative_change < -0.3 and message like '%dropped%'"
    ) == [(len(conversion),)]


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
    workspace.build(*BUILD)
    assert fire(settings).outcomes["conversion_anomaly"].candidates == 0

    stats: dict[str, int] = {}
    minutes = read_minutes(settings.replica_path, None, DetectorSettings())
    alerts, _, _ = detect(minutes, stats=stats)
    assert alerts == []
    assert stats["minutes"] >= 24 * 60 - 70  # every minute after the first hour's baseline
    assert stats["testable"] >= 0.95 * stats["minutes"], stats
