"""Loading the Dagster code location has no side effects (issue #28): every Dagster process
(webserver, daemon, each run and each sensor evaluation) loads it, so loading only reads. No
file in the data directory, the dbt project or the temporary directory, no process left."""

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


def test_loading_the_code_location_in_a_fresh_process_creates_nothing(tmp_path):
    home, dagster_home, scratch = tmp_path / "home", tmp_path / "dagster", tmp_path / "tmp"
    for folder in (home, dagster_home, scratch):
        folder.mkdir()
    project_before = tree(DBT_PROJECT_DIR)
    env = {
        **os.environ,
        "LAKEPULSE_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "TMPDIR": str(scratch),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    env.pop("LAKEPULSE_PG_URL", None)
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    # The definitions are whole: the dbt models (parsed in memory), jobs and sensors' jobs.
    jobs = loaded.stdout.split("jobs ", 1)[1].splitlines()[0].split()
    assert {"ingest_and_build", "replay_marts", "retention", "pipeline_worker"} <= set(jobs)
    assert int(loaded.stdout.split("assets ", 1)[1].split()[0]) > 50
    assert tree(home) == set()
    assert tree(dagster_home) == set()
    assert tree(scratch) == set()
    assert tree(tmp_path) == {"home", "dagster", "tmp"}
    assert tree(DBT_PROJECT_DIR) == project_before


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
