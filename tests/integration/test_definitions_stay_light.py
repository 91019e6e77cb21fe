"""Loading the Dagster code location and evaluating its running sensors imports none of the
libraries the workflows use (pyarrow, numpy, pandas, DuckDB, deltalake, psycopg): the code
server holds the definitions for the whole demo, next to the pipeline worker, and every
megabyte it keeps is taken from the peak RSS budget of issue #25 (~130 MB of them when it
imported the workflows with the definitions). They are imported by the assets, checks, ops and
resources that run them, in a run's process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lakepulse.core.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

HEAVY = ("pandas", "pyarrow", "numpy", "duckdb", "deltalake", "psycopg")

LOAD = f"""
import sys

from lakepulse.core.settings import Settings

# A new data directory, as the demo's code server finds it before the first build: no
# manifest yet, so loading the definitions parses the project (dbt-duckdb's adapter imports
# DuckDB).
settings = Settings.from_env()
assert not settings.dbt_manifest_path.exists()

import orchestration.definitions as location
from ingestion.landing import LandingLog
from lakepulse.core.heartbeat import worker_beating

location.build_definitions(settings)
LandingLog(settings.landing_dir).write("acme", "events", [{{"message_id": "m1"}}])
assert LandingLog(settings.landing_dir).latest_name()  # landing_log_sensor
assert not worker_beating(settings)  # pipeline_worker_sensor
print("heavy", *sorted(name for name in {HEAVY!r} if name in sys.modules))
"""


def test_the_code_location_loads_and_senses_without_the_workflows_libraries(tmp_path):
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    env = {
        **os.environ,
        "LAKEPULSE_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "PYTHONPATH": str(PROJECT_ROOT),
        # Set, so the PostgreSQL publish asset is defined too (nothing connects at load).
        "LAKEPULSE_PG_URL": "postgresql://lakepulse@127.0.0.1:1/lakepulse",
    }
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split("heavy", 1)[1].split() == []
