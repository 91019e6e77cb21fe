"""A real ``lakepulse publish`` SIGKILLed inside its transaction, during a swap and during a
delta (held there by the publish's fault-injection pause, so the kill lands at that exact
point): readers see the previous table or the new one, never a missing or half-changed one,
and the next publish repairs the state."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import uuid
from datetime import timedelta

import psycopg
import pytest

from ingestion.landing import LandingLog
from lakepulse.core.settings import PROJECT_ROOT
from lakepulse.warehouse.publish import FAULT_PAUSE, publish
from tests.conftest import SIM_CLOCK, land_simulated, landing_rows
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

SELECT = ("--select", "+fct_sessions", "+mart_event_volume", "+mart_funnel_conversion")
COLUMNS = {
    "fct_sessions": "session_id, session_end_at, events",
    "mart_event_volume": "event_minute, event_type, event_name, events",
    "mart_funnel_conversion": "funnel_id, order_mode, entry_date, channel, device_class, "
    "step_number, users",
}
SWAPPED = "mart_funnel_conversion"
"""A mart published by a copy swapped in (not a delta: no `delta_key` in its YAML)."""


@pytest.fixture
def database(fresh_database):
    return fresh_database


def live(url: str, mart: str) -> list[tuple]:
    """What a reader sees of a mart: its rows' keys (and volume), sorted."""
    column = COLUMNS[mart]
    with psycopg.connect(url, autocommit=True) as conn:
        return ordered(conn.execute(f"select tenant_id, {column} from marts.{mart}").fetchall())


def built(workspace, mart: str) -> list[tuple]:
    column = COLUMNS[mart]
    return ordered(workspace.sql(f"select tenant_id, {column} from marts.{mart}"))


def ordered(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda row: tuple((v is None, "" if v is None else v) for v in row))


def more_traffic(settings, workspace, hours: int, extend: int = 0) -> None:
    """New visits ``hours`` after the clock; with ``extend``, also one more page view a minute
    after the last event of that many existing visitors, which changes their sessions' rows."""
    if extend:
        log = LandingLog(settings.landing_dir)
        latest: dict[tuple[str, str], dict] = {}
        for f in log.files("events"):
            for row in landing_rows(f.path):
                key = (row["tenant_id"], row["anonymous_id"])
                if key not in latest or row["timestamp"] > latest[key]["timestamp"]:
                    latest[key] = row
        minute = 60_000_000  # landing timestamps are microseconds
        for key in sorted(latest)[:extend]:
            row = latest[key] | {"message_id": str(uuid.uuid4()), "type": "page", "event": "Home"}
            for column in ("timestamp", "original_timestamp", "received_at"):
                row[column] += minute
            log.write(key[0], "events", [row])
    start = SIM_CLOCK + timedelta(hours=hours)
    land_simulated(settings, 600, seed=10 + hours, start=start, count=False)
    workspace.ingest()
    workspace.build(*SELECT)


def publish_process(settings, url: str, pause: str | None) -> subprocess.Popen:
    env = settings.process_env() | {"LAKEPULSE_PG_URL": url}
    if pause:
        env[FAULT_PAUSE] = pause
    return subprocess.Popen(
        [sys.executable, "-m", "lakepulse.cli", "publish"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_pause(proc: subprocess.Popen, pause: str) -> None:
    """Read the publish's output until it reports the pause (inside its transaction)."""
    point, mart = pause.split(":")
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("paused:"):
            break
    assert lines and lines[-1].strip() == f"paused: {point} of {mart}", "".join(lines)


def sigkill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def republish(settings, url: str) -> str:
    done = publish_process(settings, url, None)
    out, _ = done.communicate()
    assert done.returncode == 0, out
    return out


def waiting_on_a_lock(url: str, mart: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return (
            conn.execute(
                "select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                "and query like %s",
                [f"%marts.{mart}%"],
            ).fetchone()[0]
            > 0
        )


def test_a_publish_killed_inside_a_swap_leaves_the_previous_table(settings, workspace, database):
    land_simulated(settings, 1500, count=False)
    workspace.ingest()
    workspace.build(*SELECT)
    publish(settings, database)
    before = live(database, SWAPPED)
    more_traffic(settings, workspace, hours=1)
    after = built(workspace, SWAPPED)
    assert before and after != before  # the publish has something new to swap in

    proc = publish_process(settings, database, f"swap:{SWAPPED}")
    wait_for_pause(proc, f"swap:{SWAPPED}")
    # A reader arriving now waits for the swap's transaction (its renames hold the lock)...
    seen: list = []
    reader = threading.Thread(target=lambda: seen.append(live(database, SWAPPED)))
    reader.start()
    wait_until(
        lambda: seen or waiting_on_a_lock(database, SWAPPED),
        "the reader to wait for the swap (or to read)",
    )
    sigkill(proc)
    reader.join(timeout=120)
    # ... and, the publisher dead, reads the previous table whole.
    assert seen == [before]
    assert live(database, SWAPPED) == before

    out = republish(settings, database)
    assert f"marts.{SWAPPED}" in out
    assert live(database, SWAPPED) == after, out
    assert live(database, "fct_sessions") == built(workspace, "fct_sessions")
    # Repaired for good: nothing is left to copy.
    assert "published 0 marts" in republish(settings, database)


def test_a_publish_killed_inside_a_delta_leaves_the_previous_rows(settings, workspace, database):
    land_simulated(settings, 1500, count=False)
    workspace.ingest()
    workspace.build(*SELECT)
    publish(settings, database)
    more_traffic(settings, workspace, hours=1)
    assert "delta of" in republish(settings, database)  # the published state is in step
    before = live(database, "fct_sessions")
    more_traffic(settings, workspace, hours=2, extend=20)
    after = built(workspace, "fct_sessions")
    # Rows for the delta to delete and insert again (sessions extended), and to insert.
    assert len(set(before) - set(after)) == 20 and len(after) > len(before)

    proc = publish_process(settings, database, "delta:fct_sessions")
    wait_for_pause(proc, "delta:fct_sessions")
    # Between the delta's delete and its insert: a reader sees the rows before the delta...
    assert live(database, "fct_sessions") == before
    sigkill(proc)
    # ... and still does once the publisher is dead and its transaction rolled back.
    assert live(database, "fct_sessions") == before

    out = republish(settings, database)
    assert "marts.fct_sessions" in out and "delta of" in out
    assert live(database, "fct_sessions") == after
    assert "published 0 marts" in republish(settings, database)
