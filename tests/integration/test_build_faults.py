"""Crash safety at every boundary of the pipeline's cycle, as deterministic fault injection:
a real cycle process (``cycle_driver``: load, dbt build, replica, publish, fire) is SIGKILLed
at one named boundary, the next cycle runs normally, and then

- every model equals a full refresh of the same bronze,
- PostgreSQL holds what a forced publish of that full refresh holds, mart by mart,
- no firing is recorded twice, and none sits twice in bronze as a `Trigger Fired` event
  (the models of the firing log hold it as of the cycle before, by design: they are built
  before the cycle fires).

Boundaries: after a model commits (dbt reports it; the kill lands before the next commits),
inside a large model (dbt started it), and the cycle's own steps (``cycle_driver.BOUNDARIES``).
CI runs a sample; ``pytest -m faults tests/integration/test_build_faults.py`` runs the rest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from deltalake import DeltaTable

from lakepulse.core.settings import PROJECT_ROOT
from tests.integration.cycle_driver import BOUNDARIES
from tests.integration.test_incremental_marts import (
    GOLD,
    NOT_REBUILT,
    land,
    simulated,
    warehouse_tables,
)
from tests.integration.test_serving import with_db

pytestmark = pytest.mark.integration

# (how, where): "after" a model's commit is reported, "inside" a model dbt has started, "at" a
# boundary of the cycle itself.
MODEL_BOUNDARIES = [
    ("after", "stg_events"),
    ("after", "stg_orders"),
    ("after", "int_sessionized_events"),
    ("after", "int_sessions"),
    ("after", "fct_sessions"),
    ("after", "dim_users"),
    ("after", "int_user_activity_days"),
    ("after", "mart_buyer_signals"),
    ("inside", "mart_conversion_windows"),
    ("inside", "fct_sessions"),
]
ALL = MODEL_BOUNDARIES + [("at", name) for name in BOUNDARIES]
# Models of the firing log: the cycle fires after it builds, so these hold the log as of the
# previous cycle, by design; the log itself is checked for exactly-once instead.
SNAPSHOT_KEPT = {"snapshot_at", "snapshots"}  # mart_experiment_results: when, how many so far
OF_THE_FIRING_LOG = {"fct_trigger_firings", "fct_trigger_deliveries", "mart_trigger_impact"}
# CI kills inside a model and mid-publish (~65 s each); the other boundaries run with `-m faults`.
CI_SAMPLE = {("inside", "mart_conversion_windows"), ("at", "published")}

ORDER_COPIES = [
    # o9 completed on g-d9 at 12:05 ...
    [
        {
            "type": "page",
            "messageId": "f1",
            "anonymousId": "g-d9",
            "name": "Home",
            "timestamp": "2026-11-20T12:00:00+00:00",
        },
        {
            "type": "track",
            "messageId": "f2",
            "anonymousId": "g-d9",
            "event": "Order Completed",
            "timestamp": "2026-11-20T12:05:00+00:00",
            "properties": {"order_id": "o9", "revenue": 47.37},
        },
    ],
    # ... and an earlier copy from another device arrives in the faulted cycle
    [
        {
            "type": "track",
            "messageId": "f3",
            "anonymousId": "g-d8",
            "event": "Order Completed",
            "timestamp": "2026-11-20T11:00:00+00:00",
            "properties": {"order_id": "o9", "revenue": 47.37},
        },
    ],
]


def cycle(settings, pg_url: str, kill: tuple[str, str] | None = None) -> str:
    """One cycle in a new process; with ``kill``, SIGKILLed at that boundary (asserted)."""
    env = os.environ | {"CRM_WEBHOOK_URL": "http://127.0.0.1:9/hook"}
    how, where = kill or (None, None)
    if how == "at":
        env["LAKEPULSE_FAULT_KILL_AT"] = where
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.cycle_driver", pg_url],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        started = how == "inside" and f"model marts.{where} " in line and " START " in line
        committed = how == "after" and f".{where} " in line and " OK created " in line
        if started or committed:
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=600)
    output = "".join(lines)
    if kill is None:
        assert process.returncode == 0, output[-3000:]
    else:
        assert process.returncode == -signal.SIGKILL, output[-3000:]
        if how == "at":
            assert f"fault: killed at {where}" in output
    return output


def published(pg_url: str) -> dict[str, list]:
    """Every published mart's rows, but the history of experiment snapshots (one a build:
    NOT_REBUILT, and each result's snapshot time and count), as in ``warehouse_tables``."""
    from tests.served import MARTS

    marts = {}
    with psycopg.connect(pg_url) as conn:
        for mart in MARTS.keys() - NOT_REBUILT:
            cursor = conn.execute(f"select * from marts.{mart}")
            kept = [i for i, c in enumerate(cursor.description) if c.name not in SNAPSHOT_KEPT]
            marts[mart] = sorted(repr([row[i] for i in kept]) for row in cursor.fetchall())
    return marts


@pytest.mark.parametrize(
    "kill",
    [
        pytest.param(k, id=f"{k[0]}-{k[1]}", marks=() if k in CI_SAMPLE else pytest.mark.faults)
        for k in ALL
    ],
)
def test_a_cycle_killed_at_a_boundary_leaves_nothing_for_the_next_to_get_wrong(
    settings, workspace, postgres_url, kill
):
    from lakepulse.warehouse.publish import publish

    database = f"faults_{kill[0]}_{kill[1]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"drop database if exists {database}")
        conn.execute(f"create database {database}")
    pg_url = with_db(postgres_url, database)
    traffic = simulated(3_000)
    halves = [traffic[: len(traffic) // 2], traffic[len(traffic) // 2 :]]
    for i, (half, copies) in enumerate(zip(halves, ORDER_COPIES, strict=True)):
        land(
            settings,
            half + [(GOLD, message) for message in copies],
            received=datetime.now(UTC) - timedelta(hours=2 - i),
        )
        if i == 0:
            cycle(settings, pg_url)
    cycle(settings, pg_url, kill)
    cycle(settings, pg_url)  # the next cycle, as the sensor would start it

    recovered_models = warehouse_tables(settings)
    recovered_marts = published(pg_url)
    firings = DeltaTable(str(settings.trigger_firings_path)).to_pyarrow_table()
    assert firings.num_rows > 0
    assert len(set(firings["firing_id"].to_pylist())) == firings.num_rows
    written_back = workspace.sql(
        "select tenant_id, message_id, count(*) from raw.events where event = 'Trigger Fired' "
        "group by 1, 2 having count(*) > 1"
    )

    workspace.build("--full-refresh")
    publish(settings, pg_url, force=True)
    rebuilt_models = warehouse_tables(settings)
    assert recovered_models.keys() == rebuilt_models.keys()
    for table in rebuilt_models.keys() - OF_THE_FIRING_LOG:
        assert recovered_models[table] == rebuilt_models[table], table
    rebuilt_marts = published(pg_url)
    for mart in rebuilt_marts.keys() - OF_THE_FIRING_LOG:
        assert recovered_marts[mart] == rebuilt_marts[mart], mart
    assert written_back == []
    # the displaced copy's session holds no order; the earlier copy's does
    assert workspace.warehouse_sql(
        "select device_id, orders from marts.fct_sessions where tenant_id = 'gold' "
        "and device_id like 'g-d%' order by 1"
    ) == [("g-d8", 1), ("g-d9", 0)]
