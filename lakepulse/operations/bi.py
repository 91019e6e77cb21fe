"""``lakepulse bi``: Apache Superset over the serving PostgreSQL, with the dashboards of
``bi/superset/`` imported for every tenant.

Superset's dependencies conflict with ours (SQLAlchemy 1.4, Flask 3, pandas 2), so it runs from
its own virtualenv, ``bi/.venv``, built on first use from ``bi/requirements.lock``. Its metadata
(SQLite), secret key and admin password live under ``$LAKEPULSE_HOME/bi`` (mode 0600).

Tenant isolation is PostgreSQL's, not Superset's: each tenant gets its own copy of the
dashboards on its own Superset database connection, which logs in as the tenant's BI login
(``lakepulse tenants bi-login``), so row-level security filters every chart's query by tenant.
A Superset role per tenant may use only that connection, and the tenant's Superset user holds
only that role (plus Gamma), so it sees only its own dashboards. ``bi/provision.py`` applies
this inside Superset; this module prepares the plan and starts the server.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import yaml

from ingestion.tenants import TenantRegistry
from lakepulse.core.settings import PROJECT_ROOT, Settings
from lakepulse.core.signals import StopRequested
from lakepulse.warehouse.publish import create_tenant_login

BI_DIR = PROJECT_ROOT / "bi"
BI_LOCK = BI_DIR / "requirements.lock"
BI_VENV = Path(os.environ.get("LAKEPULSE_BI_VENV") or BI_DIR / ".venv")
DASHBOARDS_DIR = BI_DIR / "superset"
"""Dashboards as code: Superset's export format (metadata, databases, datasets, charts,
dashboards as YAML) for one placeholder connection, copied per tenant at import."""
ADMIN_USER = "admin"
TENANT_NAMESPACE = uuid.UUID("0d4b3c1e-7f0a-4f52-8f8e-6e0a2f3c9b21")

Echo = Callable[[str], None]


def bi_home(settings: Settings) -> Path:
    return settings.home / "bi"


def bi_port() -> int:
    return int(os.environ.get("LAKEPULSE_BI_PORT", "8089"))


def _lock_digest() -> str:
    return hashlib.sha256(BI_LOCK.read_bytes()).hexdigest()[:16]


def bi_venv_ready() -> bool:
    """Whether ``bi/.venv`` holds exactly ``bi/requirements.lock``."""
    stamp = BI_VENV / ".installed"
    return stamp.exists() and stamp.read_text() == _lock_digest()


def ensure_bi_venv(echo: Echo) -> Path:
    """Superset's virtualenv, (re)built when the lock changed; returns its ``bin`` directory."""
    stamp = BI_VENV / ".installed"
    bin_dir = BI_VENV / "bin"
    if bi_venv_ready():
        return bin_dir
    echo(f"building Superset's virtualenv in {BI_VENV} from {BI_LOCK} (about 2 minutes, once) ...")
    if not (bin_dir / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(BI_VENV)], check=True)
    pip = [
        str(bin_dir / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, "pip==26.3"], check=True)
    subprocess.run([*pip, "--no-deps", "-r", str(BI_LOCK)], check=True)
    stamp.write_text(_lock_digest())
    return bin_dir


def _secret(path: Path, nbytes: int) -> str:
    """A generated secret kept in ``path`` (0600), created once."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(secrets.token_urlsafe(nbytes))
    return path.read_text().strip()


def superset_env(settings: Settings) -> dict[str, str]:
    """Environment for Superset's processes: its config, its home, telemetry off."""
    home = bi_home(settings)
    _secret(home / "secret_key", 42)
    env = settings.process_env()
    env.update(
        SUPERSET_CONFIG_PATH=str(BI_DIR / "superset_config.py"),
        SUPERSET_HOME=str(home),
        LAKEPULSE_BI_HOME=str(home),
        FLASK_APP="superset.app:create_app()",
        SCARF_ANALYTICS="false",
        PYTHONWARNINGS="ignore",
    )
    env.pop("PYTHONPATH", None)
    return env


def tenant_bi_logins(
    settings: Settings, tenants: list[str], customer_level: frozenset[str] = frozenset()
) -> dict[str, tuple[str, str]]:
    """One PostgreSQL BI login per tenant; passwords kept (0600) so Superset's and Metabase's
    connections survive a restart. Returns tenant -> (role, password)."""
    path = settings.home / "postgres" / "bi_logins.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    logins = {}
    for tenant in tenants:
        logins[tenant] = create_tenant_login(
            settings.pg_url,
            tenant,
            saved.get(tenant, {}).get("password"),
            customer_level=tenant in customer_level,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = saved | {t: {"user": r, "password": p} for t, (r, p) in logins.items()}
    path.write_text(json.dumps(merged, indent=2))
    path.chmod(0o600)
    return logins


def superset_database_uri(pg_url: str, role: str, password: str) -> str:
    """SQLAlchemy URI for Superset reaching the serving PostgreSQL as ``role``: over TCP when
    ``pg_url`` names a host, else over the same Unix socket directory (``make demo``'s and the
    test server's URLs)."""
    parts = urlsplit(pg_url)
    query = parse_qs(parts.query)
    database = parts.path.lstrip("/") or "postgres"
    login = f"{quote(role, safe='')}:{quote(password, safe='')}"
    if parts.hostname:
        return f"postgresql+psycopg2://{login}@{parts.hostname}:{parts.port or 5432}/{database}"
    socket_dir = query.get("host", ["/var/run/postgresql"])[0]
    port = query.get("port", ["5432"])[0]
    return f"postgresql+psycopg2://{login}@/{database}?host={quote(socket_dir)}&port={port}"


def _tenant_uuid(tenant: str, original: str) -> str:
    return str(uuid.uuid5(TENANT_NAMESPACE, f"{tenant}:{original}"))


def tenant_bundle(tenant: str, role: str, password: str, pg_url: str) -> tuple[bytes, str]:
    """``bi/superset/`` rewritten for one tenant: its own connection (its BI login), and fresh
    UUIDs, titles and slugs for every object so tenants' copies never collide. Returns the
    ZIP's bytes and the connection's UUID."""
    files = {p.relative_to(DASHBOARDS_DIR).as_posix(): p for p in DASHBOARDS_DIR.rglob("*.yaml")}
    docs = {name: yaml.safe_load(path.read_text()) for name, path in files.items()}
    originals = {doc["uuid"] for doc in docs.values() if isinstance(doc, dict) and "uuid" in doc}
    mapping = {old: _tenant_uuid(tenant, old) for old in originals}

    def remap(value):
        if isinstance(value, dict):
            return {k: remap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [remap(v) for v in value]
        return mapping.get(value, value) if isinstance(value, str) else value

    buffer = io.BytesIO()
    database_uuid = ""
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, doc in docs.items():
            doc = remap(doc)
            if name.startswith("databases/"):
                doc["database_name"] = f"lakepulse {tenant}"
                doc["sqlalchemy_uri"] = superset_database_uri(pg_url, role, password)
                doc["password"] = password
                database_uuid = doc["uuid"]
            elif name.startswith("datasets/"):
                # Superset's SQLite metadata keeps an old UNIQUE(table_name) on datasets, so a
                # tenant's copy of a physical dataset is a virtual one over the same table.
                doc["sql"] = doc["sql"] or f"select * from {doc['schema']}.{doc['table_name']}"
                doc["table_name"] = f"{doc['table_name']}__{tenant}"
            elif name.startswith("dashboards/"):
                doc["dashboard_title"] = f"{doc['dashboard_title']} · {tenant}"
                doc["slug"] = f"{doc['slug']}-{re.sub(r'[^a-z0-9-]', '-', tenant.lower())}"
            elif name.startswith("charts/"):
                doc["slice_name"] = f"{doc['slice_name']} · {tenant}"
            bundle.writestr(f"lakepulse_{tenant}/{name}", yaml.safe_dump(doc, sort_keys=False))
    return buffer.getvalue(), database_uuid


@dataclass(frozen=True)
class BiAccess:
    url: str
    admin_password: str
    tenant_passwords: dict[str, str]
    """Superset user (the tenant's name) -> password."""


def bi_access(settings: Settings, tenants: list[str]) -> BiAccess:
    """Superset's URL and the logins to show the operator: generated once, kept under
    ``$LAKEPULSE_HOME/bi`` (0600). ``make demo`` calls this before Superset is up."""
    home = bi_home(settings)
    return BiAccess(
        f"http://127.0.0.1:{bi_port()}",
        _secret(home / "admin_password", 12),
        {tenant: _secret(home / "users" / tenant, 12) for tenant in tenants},
    )


def prepare_superset(settings: Settings, echo: Echo) -> tuple[Path, dict[str, str], BiAccess]:
    """Venv, metadata, admin, and every tenant's dashboards, connection, role and user (all
    idempotent). Returns Superset's bin dir, its environment and the logins to show."""
    if not settings.pg_url:
        raise RuntimeError("no serving PostgreSQL: set LAKEPULSE_PG_URL (make demo starts one)")
    bin_dir = ensure_bi_venv(echo)
    home = bi_home(settings)
    env = superset_env(settings)
    log = settings.logs_dir / "superset-setup.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    tenants = TenantRegistry(settings.tenants_file).tenants()
    access = bi_access(settings, tenants)
    stamp = home / ".initialized"
    initialize = not stamp.exists() or stamp.read_text() != _lock_digest()
    if initialize:
        echo("initializing Superset's metadata (SQLite under $LAKEPULSE_HOME/bi) ...")
    logins = tenant_bi_logins(settings, tenants)
    plan = {
        "initialize": initialize,
        "admin_user": ADMIN_USER,
        "admin_password": access.admin_password,
        "tenants": [],
    }
    for tenant, (role, password) in logins.items():
        bundle, database_uuid = tenant_bundle(tenant, role, password, settings.pg_url)
        path = home / f"bundle-{tenant}.zip"
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            out.write(bundle)
        plan["tenants"].append(
            {
                "bundle": str(path),
                "database_uuid": database_uuid,
                "passwords": {"databases/lakepulse.yaml": password},
                "role": f"tenant_{tenant}",
                "user": tenant,
                "password": access.tenant_passwords[tenant],
            }
        )
    try:
        with open(log, "ab") as out:
            subprocess.run(
                [str(bin_dir / "python"), str(BI_DIR / "provision.py")],
                input=json.dumps(plan).encode(),
                env=env,
                cwd=BI_DIR,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
            )
    except subprocess.CalledProcessError:
        raise RuntimeError(f"Superset provisioning failed; see {log}") from None
    finally:
        for tenant in plan["tenants"]:  # they hold the tenants' database passwords
            Path(tenant["bundle"]).unlink(missing_ok=True)
    stamp.write_text(_lock_digest())
    return bin_dir, env, access


def superset_argv(bin_dir: Path) -> list[str]:
    """The web server: Superset's own ``run`` (Flask, threaded) on loopback."""
    return [
        str(bin_dir / "superset"),
        "run",
        "-h",
        "127.0.0.1",
        "-p",
        str(bi_port()),
        "--with-threads",
    ]


def describe(access: BiAccess) -> list[str]:
    """What the operator needs: URL and logins (the admin's and each tenant's)."""
    lines = [f"  Superset    {access.url}   (login: {ADMIN_USER} / {access.admin_password})"]
    for tenant, password in access.tenant_passwords.items():
        lines.append(
            f"              {tenant}: user {tenant}  password {password}  (own dashboards only)"
        )
    return lines


def stop_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process's whole group, then SIGKILL what is left after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=5)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def run_bi(settings: Settings, echo: Echo) -> int:
    """Prepare Superset, serve it until Ctrl-C (or SIGTERM), then stop its process group."""
    started = time.monotonic()
    bin_dir, env, access = prepare_superset(settings, echo)
    log = settings.logs_dir / "superset.log"
    stopping = StopRequested()
    with open(log, "ab") as out:
        server = subprocess.Popen(
            superset_argv(bin_dir),
            env=env,
            cwd=BI_DIR,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        up = False
        while not stopping:
            if server.poll() is not None:
                echo(f"Superset exited (code {server.returncode}); see {log}")
                return 1
            if not up and answers(access.url + "/health"):
                up = True
                echo(f"Superset is up in {time.monotonic() - started:.0f} s:")
                for line in describe(access):
                    echo(line)
                echo(
                    "Dashboards: Business, Marketing, Operations and Predictions per tenant. Ctrl-C stops it."
                )
            time.sleep(0.5)
    finally:
        stop_group(server)
        echo("Superset stopped.")
    return 0
