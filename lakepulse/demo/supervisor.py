"""``lakepulse demo``: collector, traffic simulator and Dagster on localhost, one Ctrl-C stops all.

Each service runs in its own session (process group) with its log under
``$LAKEPULSE_HOME/logs``. ``dagster dev`` does not always exit on SIGTERM, so shutdown sends
SIGTERM to every process of every group, waits, then SIGKILLs whatever is left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from ingestion.tenants import TenantRegistry
from lakepulse.core.dagster_instance import ensure_instance
from lakepulse.core.settings import PROJECT_ROOT, Settings
from lakepulse.core.signals import StopRequested
from lakepulse.operations.bi import (
    bi_access,
    bi_port,
    bi_venv_ready,
    describe,
    tenant_bi_logins,
)
from lakepulse.warehouse.postgres import serving_postgres

DEMO_TENANTS = {"acme": "lp_demo_acme_key", "globex": "lp_demo_globex_key"}
"""Well-known demo write keys, printed in the banner so a curl can use them too."""


@dataclass
class Service:
    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen | None = None
    tree: set[int] = field(default_factory=set)

    def start(self, env: dict[str, str]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def remember_tree(self) -> None:
        """Record descendants while they exist: some re-parent themselves on shutdown."""
        if self.process is None:
            return
        try:
            parent = psutil.Process(self.process.pid)
            self.tree |= {parent.pid, *(c.pid for c in parent.children(recursive=True))}
        except psutil.NoSuchProcess:
            pass

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def register_demo_tenants(settings: Settings) -> dict[str, str]:
    registry = TenantRegistry(settings.tenants_file)
    for tenant, key in DEMO_TENANTS.items():
        if registry.resolve(key) is None:
            registry.add(tenant, key)
    return dict(DEMO_TENANTS)


def services(settings: Settings, rate: float, with_bi: bool = True) -> list[Service]:
    bin_dir = Path(sys.executable).parent
    logs = settings.home / "logs"
    cli = [sys.executable, "-m", "lakepulse.cli"]
    return [
        Service("collector", [*cli, "collect"], logs / "collector.log"),
        Service(
            "dagster",
            [
                str(bin_dir / "dagster"),
                "dev",
                "-w",
                str(PROJECT_ROOT / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(settings.dagster_port),
            ],
            logs / "dagster.log",
        ),
        Service(
            "simulator", [*cli, "simulate", "--rate", str(rate), "--quiet"], logs / "simulator.log"
        ),
    ] + ([Service("superset", [*cli, "bi"], logs / "bi.log")] if with_bi else [])


def wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def stop_all(running: list[Service], grace: float = 10.0) -> None:
    """SIGTERM every process we started (and their children), then SIGKILL after ``grace``."""
    for service in running:
        service.remember_tree()
    pids = set().union(*(s.tree for s in running)) if running else set()
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    for service in running:
        if service.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=1)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def run_demo(settings: Settings, rate: float, echo, with_bi: bool = True) -> int:
    for name, port, variable in (
        ("collector", settings.collector_port, "LAKEPULSE_COLLECTOR_PORT"),
        ("Dagster UI", settings.dagster_port, "LAKEPULSE_DAGSTER_PORT"),
        *([("Superset", bi_port(), "LAKEPULSE_BI_PORT")] if with_bi else []),
    ):
        if port_in_use("127.0.0.1", port):
            echo(
                f"port {port} for the {name} is in use (another demo still running?). "
                f"Stop it, or pick another port: {variable}=<port> make demo"
            )
            return 1
    pg_port = int(os.environ.get("LAKEPULSE_PG_PORT", "5433"))
    if not settings.pg_url and port_in_use("127.0.0.1", pg_port):
        echo(
            f"port {pg_port} for PostgreSQL is in use. Pick another: LAKEPULSE_PG_PORT=<port> make demo"
        )
        return 1
    settings.ensure_dirs()
    ensure_instance(settings)
    keys = register_demo_tenants(settings)
    with contextlib.ExitStack() as stack:
        if not settings.pg_url:
            echo(f"starting PostgreSQL for BI on 127.0.0.1:{pg_port} ...")
            pg_url = stack.enter_context(
                serving_postgres(settings.home / "postgres" / "data", pg_port)
            )
            settings = dataclasses.replace(settings, pg_url=pg_url)
        logins = tenant_bi_logins(settings, list(keys))
        return _run_services(settings, rate, echo, keys, logins, pg_port, with_bi)


def _run_services(settings, rate, echo, keys, logins, pg_port, with_bi=True) -> int:
    env = settings.process_env()
    env["DAGSTER_IS_DEV_CLI"] = "1"
    stopping = StopRequested()

    started: list[Service] = []
    try:
        collector, dagster, simulator, *bi = services(settings, rate, with_bi)
        for service in (collector, dagster, *bi):
            service.start(env)
            started.append(service)
        if not wait_http(f"{settings.collector_url}/health", 30):
            echo(f"collector did not start; see {collector.log}")
            return 1
        simulator.start(env)
        started.append(simulator)
        ui = f"http://127.0.0.1:{settings.dagster_port}"
        echo("")
        echo("lakepulse demo is starting:")
        echo(
            f"  collector   {settings.collector_url}/v1/batch   (health: {settings.collector_url}/health)"
        )
        echo(f"  Dagster UI  {ui}   (asset graph: {ui}/asset-groups)")
        echo(f"  data        {settings.home}")
        echo(f"  logs        {settings.home / 'logs'}")
        echo("  write keys  " + ", ".join(f"{t}={k}" for t, k in keys.items()))
        echo(
            f"  PostgreSQL  marts for BI (Metabase: PostgreSQL, host 127.0.0.1, port {pg_port}, database postgres, schema marts)"
        )
        for tenant, (role, password) in logins.items():
            echo(f"              {tenant}: user {role}  password {password}")
        access = bi_access(settings, list(keys)) if with_bi else None
        if access:
            for line in describe(access):
                echo(line)
            first = "" if bi_venv_ready() else "the first run builds its virtualenv, ~2 min; "
            echo(f"              (starting; {first}log: {bi[0].log})")
        echo("")
        echo("The simulator sends storefront traffic; every 60 s the landing_log_sensor loads it")
        echo("into Delta and dbt rebuilds the marts. Explore with:")
        echo(
            '  lakepulse sql "select * from marts.mart_event_volume order by event_minute desc limit 10"'
        )
        echo("Press Ctrl-C to stop everything.")
        ui_ready = bi_ready = False
        while not stopping:
            for service in started:
                service.remember_tree()
                if not service.alive():
                    echo(
                        f"{service.name} exited (code {service.process.returncode}); see {service.log}"
                    )
                    stopping.request()
            if not ui_ready and wait_http(ui + "/server_info", 0.5):
                ui_ready = True
                echo(f"Dagster UI is up: {ui}")
            if access and not bi_ready and wait_http(access.url + "/health", 0.5):
                bi_ready = True
                echo(f"Superset is up: {access.url} (Business, Marketing, Operations dashboards)")
            time.sleep(1)
    finally:
        echo("stopping lakepulse demo ...")
        stop_all(started)
        echo("all demo processes stopped.")
    return 0
