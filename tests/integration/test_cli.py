"""The operator CLI: what it prints and what it does."""

import subprocess
import sys

import pytest

from ingestion.tenants import TenantRegistry
from lakepulse.core.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration


def cli(settings, *args):
    return subprocess.run(
        [sys.executable, "-m", "lakepulse.cli", *args],
        env=settings.process_env(),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_tenants_add_prints_a_working_write_key(settings):
    result = cli(settings, "tenants", "add", "shop-1")
    assert result.returncode == 0
    key = result.stdout.strip()
    assert key.startswith("lp_") and "point a Segment SDK" in result.stderr
    registry = TenantRegistry(settings.tenants_file)
    assert registry.resolve(key).tenant_id == "shop-1"
    assert key not in settings.tenants_file.read_text()  # stored hashed only
    assert cli(settings, "tenants", "list").stdout.split() == ["shop-1"]


def test_tenants_add_rejects_a_bad_name_clearly(settings):
    result = cli(settings, "tenants", "add", "Bad Name!")
    assert result.returncode == 2
    assert "must be 1-63 characters" in result.stderr
    assert not settings.tenants_file.exists()


def test_sql_on_an_empty_home_says_what_to_do(settings):
    result = cli(settings, "sql", "select 42 as answer")
    assert result.returncode == 0
    assert "42" in result.stdout
    assert "lakepulse ingest" in result.stderr and "lakepulse build" in result.stderr


def test_sql_reports_bad_queries(settings):
    result = cli(settings, "sql", "select * from nowhere")
    assert result.returncode == 2 and "query failed" in result.stderr


def test_build_passes_dbt_options_through(settings, workspace):
    from tests.conftest import land_simulated
    from tests.integration.test_incremental_marts import ran_incrementally

    land_simulated(settings, 300)
    workspace.ingest()
    workspace.build()
    result = cli(settings, "build", "--full-refresh", "--select", "stg_events")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Marts rebuilt" in result.stdout
    assert not ran_incrementally(settings, "stg_events")  # rebuilt whole, not appended to
    assert "fct_sessions" not in result.stdout  # only the selected model ran


_HOLD_DUCKDB = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read")
print("held", flush=True)
time.sleep(600)
"""


def hold_duckdb(path, mode: str) -> subprocess.Popen:
    """Another process with ``path`` open as a build (``write``: DuckDB's exclusive lock) or a
    reader (``read``) has it, returned once it holds it; kill it to let go."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_DUCKDB, str(path), mode], stdout=subprocess.PIPE
    )
    assert holder.stdout.readline() == b"held\n"
    return holder


def test_sql_answers_while_a_build_is_running(settings, workspace):
    from tests.conftest import land_simulated

    land_simulated(settings, 2_000)
    workspace.ingest()
    workspace.build()
    query = "select count(*) as n from marts.fct_sessions"
    before = cli(settings, "sql", query)
    assert before.returncode == 0, before.stderr
    count = before.stdout.split()[-1]

    # A build holds the warehouse's write lock for as long as dbt runs: `sql` does not need it.
    writer = hold_duckdb(settings.warehouse_path, "write")
    try:
        during = cli(settings, "sql", query)
    finally:
        writer.kill()
        writer.wait()
    assert during.returncode == 0, during.stderr
    assert during.stdout.split()[-1] == count

    # A reader with the marts open does not block a build, and keeps the copy it opened.
    reader = hold_duckdb(settings.replica_path, "read")
    try:
        build = cli(settings, "build")
        assert build.returncode == 0, "the build must not be blocked by readers"
    finally:
        reader.kill()
        reader.wait()
    assert cli(settings, "sql", query).stdout.split()[-1] == count  # nothing new to build
