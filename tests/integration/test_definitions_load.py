"""Loading the Dagster code location has no side effects (issue #28): every Dagster process
(webserver, daemon, each run and each sensor evaluation) loads it, so loading only reads. No
file in the data directory, the dbt project or the temporary directory, no process left.

And it stays light (issue #25): loading it and evaluating its running sensors imports none of
the libraries the workflows use (pyarrow, numpy, pandas, DuckDB, deltalake, psycopg). The code
server holds the definitions for as long as the platform runs, beside the pipeline worker, and
every run's process loads them again; the megabytes count against the demo's peak RSS (0.43 GB
for the code server's process when it imported the workflows, 0.24 GB without). The workflows
are imported by the assets, checks, ops and resources that run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lakepulse.core.settings import DBT_PROJECT_DIR, PROJECT_ROOT

pytestmark = pytest.mark.integration

LOAD = """
import dagster as dg
import orchestration.definitions as location

defs = location.defs()  # what the code server does with the module's @dg.definitions
dg.Definitions.validate_loadable(defs)
print("jobs", " ".join(sorted(job.name for job in defs.resolve_all_job_defs())))
print("assets", len(defs.resolve_all_asset_specs()))
"""


def tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def project_tree() -> set[str]:
    """The dbt project's files, but for dbt's own rotated logs (``logs/dbt.log.N``): the dbt
    commands of tests running beside this one rotate them at any moment."""
    return {path for path in tree(DBT_PROJECT_DIR) if not re.fullmatch(r"logs/dbt\.log\.\d+", path)}


def run_in_new_process(script: str, env: dict[str, str], cwd: Path) -> str:
    """``script``'s output, run by a new Python process (nothing imported yet)."""
    loaded = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    return loaded.stdout


def test_loading_the_code_location_in_a_fresh_process_creates_nothing(tmp_path):
    home, dagster_home, scratch = tmp_path / "home", tmp_path / "dagster", tmp_path / "tmp"
    for folder in (home, dagster_home, scratch):
        folder.mkdir()
    project_before = project_tree()
    env = {
        **os.environ,
        "LAKEPULSE_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "TMPDIR": str(scratch),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    env.pop("LAKEPULSE_PG_URL", None)
    loaded = run_in_new_process(LOAD, env, tmp_path)
    # The definitions are whole: the dbt models (parsed in memory), jobs and sensors' jobs.
    jobs = loaded.split("jobs ", 1)[1].splitlines()[0].split()
    assert {"ingest_and_build", "replay_marts", "retention", "pipeline_worker"} <= set(jobs)
    assert int(loaded.split("assets ", 1)[1].split()[0]) > 50
    assert tree(home) == set()
    assert tree(dagster_home) == set()
    assert tree(scratch) == set()
    assert tree(tmp_path) == {"home", "dagster", "tmp"}
    assert project_tree() == project_before


def test_no_private_dagster_api_is_used():
    """Orchestration wires through Dagster's public API only (issue #28): no module of ours
    imports a private Dagster module or overrides a private member of a Dagster class, so an
    upgrade cannot break it silently."""
    private = re.compile(r"\b(dagster(_dbt)?\._\w+|def _(initialize_dbt_core_adapter|cli_version))")
    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()}"
        for package in ("orchestration", "lakepulse", "ingestion", "quality")
        for path in sorted((PROJECT_ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert offenders == []


HEAVY = ("pandas", "pyarrow", "numpy", "duckdb", "deltalake", "psycopg")

SENSE = f"""
import sys

from lakepulse.core.settings import Settings

# A new data directory, as the demo's code server finds it before the first build: no
# manifest yet, so loading the definitions parses the project, in a dbt process of its own
# (in this one, dbt-duckdb's adapter would import DuckDB).
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
    env = {
        **os.environ,
        "LAKEPULSE_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "PYTHONPATH": str(PROJECT_ROOT),
        # Set, so the PostgreSQL publish asset is defined too (nothing connects at load).
        "LAKEPULSE_PG_URL": "postgresql://lakepulse@127.0.0.1:1/lakepulse",
    }
    loaded = run_in_new_process(SENSE, env, tmp_path)
    assert loaded.split("heavy", 1)[1].split() == []
