"""Settings read from the environment, with local defaults under one data directory.

Every process (collector, loader, dbt, Dagster, CLI, tests) derives its paths from
``LAKEPULSE_HOME`` so that pointing one variable elsewhere moves the whole platform, and a test
gets an isolated platform by setting it to a temporary directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
TRIGGERS_FILE = DBT_PROJECT_DIR / "triggers.yml"
"""The project's triggers; ``LAKEPULSE_TRIGGERS_FILE`` points elsewhere (tests, staging)."""


def triggers_file() -> Path:
    """The triggers file this process uses: ``LAKEPULSE_TRIGGERS_FILE``, or
    :data:`TRIGGERS_FILE`. Here, not beside the triggers' code, so a process that only needs
    the path (``lakepulse demo``'s supervisor) does not import that code."""
    return Path(os.environ.get("LAKEPULSE_TRIGGERS_FILE") or TRIGGERS_FILE)


# Telemetry off everywhere: privacy, and no network waits on a machine without internet.
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "GX_ANALYTICS_ENABLED": "False",
    "DAGSTER_DISABLE_TELEMETRY": "1",
}

BRONZE_PIPELINE_NAME = "lakepulse_bronze"
"""The dlt pipeline loading the landing log into bronze (its state holds the cursors)."""

BRONZE_TABLES = ("events", "events_rejected")
"""Delta tables of the bronze layer, under ``$LAKEPULSE_HOME/lake/raw``."""

LANDING_PARTITIONS = 16
"""Landing-log partitions: a tenant always hashes to the same one, so its order is kept."""


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of data is kept, in days; each from
    ``LAKEPULSE_RETENTION_<NAME>_DAYS``. Bronze is the event database from the beginning of
    time, so its default is long; the landing log is only a buffer and an archive for replay."""

    bronze_events: int = 400
    rejected_events: int = 30
    landing_files: int = 14
    experiment_snapshots: int = 180
    loader_packages: int = 7

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RetentionPolicy:
        env = dict(os.environ if env is None else env)
        values = {}
        for name in cls.__dataclass_fields__:
            raw = env.get(f"LAKEPULSE_RETENTION_{name.upper()}_DAYS")
            if raw is not None:
                days = int(raw)
                if days < 1:
                    raise ValueError(f"LAKEPULSE_RETENTION_{name.upper()}_DAYS must be >= 1")
                values[name] = days
        return cls(**values)


def disable_telemetry() -> None:
    """Set the opt-out variables unless the operator chose otherwise."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


@dataclass(frozen=True)
class Settings:
    """Where everything lives and how to reach it; build with :meth:`from_env`."""

    home: Path
    collector_host: str = "127.0.0.1"
    collector_port: int = 8088
    dagster_port: int = 3000
    pg_url: str | None = None
    dagster_home_override: Path | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Settings of this process; switches telemetry off first (the one place that does),
        since every process (CLI, Dagster code location, collector, tests) starts here."""
        disable_telemetry()
        env = dict(os.environ if env is None else env)
        home = Path(env.get("LAKEPULSE_HOME") or PROJECT_ROOT / ".lakepulse").expanduser()
        dagster_home = env.get("DAGSTER_HOME")
        return cls(
            home=home.resolve(),
            collector_host=env.get("LAKEPULSE_COLLECTOR_HOST", "127.0.0.1"),
            collector_port=int(env.get("LAKEPULSE_COLLECTOR_PORT", "8088")),
            dagster_port=int(env.get("LAKEPULSE_DAGSTER_PORT", "3000")),
            pg_url=env.get("LAKEPULSE_PG_URL") or None,
            dagster_home_override=Path(dagster_home).resolve() if dagster_home else None,
        )

    # Layout of LAKEPULSE_HOME --------------------------------------------------------------
    @property
    def landing_dir(self) -> Path:
        """Immutable micro-batch files written by the collector."""
        return self.home / "landing"

    @property
    def lake_dir(self) -> Path:
        """Delta tables; ``raw`` is the dlt dataset holding bronze."""
        return self.home / "lake"

    @property
    def bronze_events_path(self) -> Path:
        return self.lake_dir / "raw" / "events"

    @property
    def bronze_rejected_path(self) -> Path:
        return self.lake_dir / "raw" / "events_rejected"

    @property
    def trigger_firings_path(self) -> Path:
        """Delta table of trigger firings (one row per firing, treatment and holdout arms)."""
        return self.lake_dir / "triggers" / "firings"

    @property
    def trigger_deliveries_path(self) -> Path:
        """Delta table of delivery state changes (append-only: its rows are the history)."""
        return self.lake_dir / "triggers" / "deliveries"

    @property
    def trigger_delivery_lock_path(self) -> Path:
        """Held by the one delivery pass (or re-queue) running in this data directory."""
        return self.lake_dir / "triggers" / ".deliver.lock"

    @property
    def clv_fits_path(self) -> Path:
        """Delta table of the customer-lifetime model fits (one row per tenant and fit)."""
        return self.lake_dir / "predictions" / "clv_fits"

    @property
    def propensity_fits_path(self) -> Path:
        """Delta table of the purchase-propensity models' holdout accuracy (a row per bin)."""
        return self.lake_dir / "predictions" / "propensity_fits"

    @property
    def propensity_models_dir(self) -> Path:
        """The trained purchase-propensity model of each tenant (``<tenant>.joblib``)."""
        return self.home / "models" / "propensity"

    @property
    def warehouse_path(self) -> Path:
        """DuckDB file dbt builds into; only the pipeline writes it."""
        return self.home / "warehouse" / "lakepulse.duckdb"

    @property
    def dlt_pipelines_dir(self) -> Path:
        return self.home / "dlt"

    @property
    def loader_state_path(self) -> Path:
        """dlt's local state of the bronze pipeline, holding the landing-log cursors."""
        return self.dlt_pipelines_dir / BRONZE_PIPELINE_NAME / "state.json"

    @property
    def tenants_file(self) -> Path:
        return self.home / "tenants.json"

    @property
    def triggers_dir(self) -> Path:
        """The last valid copy of ``triggers.yml`` and what dbt reads of it."""
        return self.home / "triggers"

    @property
    def dagster_home(self) -> Path:
        return self.dagster_home_override or self.home / "dagster"

    @property
    def dbt_target_dir(self) -> Path:
        """dbt artifacts per data directory, so parallel homes never share a manifest."""
        return self.home / "dbt" / "target"

    @property
    def dbt_manifest_path(self) -> Path:
        """The manifest of the last parse of the project for this data directory."""
        return self.dbt_target_dir / "manifest.json"

    @property
    def replica_path(self) -> Path:
        """Read replica of the marts that readers outside a build open (never the live file)."""
        return self.warehouse_path.with_name("lakepulse.read.duckdb")

    @property
    def seeds_marker_path(self) -> Path:
        """Fingerprint of the seeds the warehouse was last built from; beside the warehouse,
        so a new or deleted warehouse loses the marker with it."""
        return self.warehouse_path.with_name("seeds.sha256")

    @property
    def published_state_path(self) -> Path:
        """Keys and row hashes of the large marts as last published to PostgreSQL, which the
        next publish compares with to send only a delta."""
        return self.warehouse_path.with_name("published.duckdb")

    @property
    def pipeline_lock_path(self) -> Path:
        """Held by whatever writes the lake or the warehouse: the pipeline worker for each of
        its cycles, and ``lakepulse build``, ``ingest``, ``publish``, erasure, retention,
        replay and compaction for their whole run. They take turns; none waits for more than
        a cycle of the worker."""
        return self.warehouse_path.with_name("pipeline.lock")

    @property
    def logs_dir(self) -> Path:
        """The processes' logs: the demo's services, Superset's, and dbt's of the worker."""
        return self.home / "logs"

    @property
    def worker_cycles_path(self) -> Path:
        """The pipeline worker's account of its cycles, a JSON line each (stages' seconds,
        tiers built, marts published): what ``bench_freshness`` and operators read."""
        return self.warehouse_path.with_name("worker_cycles.ndjson")

    @property
    def worker_heartbeat_path(self) -> Path:
        """Rewritten by the pipeline worker after every cycle (its pid and the time): the
        Dagster sensor that keeps it alive restarts a run whose worker stopped beating."""
        return self.warehouse_path.with_name("worker.heartbeat")

    @property
    def publish_lock_path(self) -> Path:
        """Held by the publish in progress (the pipeline's or ``lakepulse publish``): one at a
        time, since both write the published state and swap the same tables."""
        return self.warehouse_path.with_name("publish.lock")

    @property
    def schemas_checked_marker_path(self) -> Path:
        """Fingerprint of the dbt project the incremental tables' columns were last checked
        against (:mod:`lakepulse.warehouse.schema_drift`); beside the warehouse, like the seeds'
        marker."""
        return self.warehouse_path.with_name("schemas_checked.sha256")

    @property
    def upstream_tests_marker_path(self) -> Path:
        """When a build last ran the upstream dbt tests; beside the warehouse, like the seeds'
        marker."""
        return self.warehouse_path.with_name("upstream_tests.at")

    @property
    def erasure_audit_path(self) -> Path:
        """Append-only audit log of erasures (keyed hashes, never user ids)."""
        return self.home / "audit" / "erasures.jsonl"

    @property
    def metrics_dir(self) -> Path:
        """Counters each collector process publishes; ``/metrics`` sums the live ones."""
        return self.home / "collector" / "metrics"

    @property
    def collector_url(self) -> str:
        return f"http://{self.collector_host}:{self.collector_port}"

    def ensure_dirs(self) -> None:
        for path in (
            self.landing_dir,
            self.lake_dir,
            self.warehouse_path.parent,
            self.dlt_pipelines_dir,
            self.dagster_home,
            self.dbt_target_dir,
        ):
            path.mkdir(parents=True, exist_ok=True)

    def process_env(self) -> dict[str, str]:
        """Environment for child processes (dbt, Dagster, collector) pointing at this home."""
        env = dict(os.environ)
        env.update(TELEMETRY_OFF | {k: v for k, v in os.environ.items() if k in TELEMETRY_OFF})
        env["LAKEPULSE_HOME"] = str(self.home)
        env["DAGSTER_HOME"] = str(self.dagster_home)
        env["LAKEPULSE_COLLECTOR_PORT"] = str(self.collector_port)
        env["LAKEPULSE_COLLECTOR_HOST"] = self.collector_host
        env["LAKEPULSE_DAGSTER_PORT"] = str(self.dagster_port)
        if self.pg_url:
            env["LAKEPULSE_PG_URL"] = self.pg_url
        return env
