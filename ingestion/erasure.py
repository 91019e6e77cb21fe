"""Erasure of one user from what the ingestion layer holds: the landing log and the bronze Delta
tables, with no old copy left on disk. :func:`lakepulse.operations.erasure.erase_user` runs the
whole request (these steps, then the warehouse and PostgreSQL).

- landing log: each file holding the user's lines is rewritten without them (same name, so
  the loader's cursors stay right; tmp + fsync + rename as the collector writes);
- bronze Delta tables: a delete, then VACUUM with zero retention (the rewritten-away files
  go) and a checkpoint with the older log entries removed (their column statistics could
  name the user);
- dlt's package archive: completed jobs are deleted after each load (see bronze_pipeline).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import orjson
from deltalake import DeltaTable

from ingestion.landing import LandingLog
from ingestion.tenants import TenantError, TenantRegistry
from lakepulse.core.duck import connect
from lakepulse.core.settings import Settings


def user_hash(settings: Settings, tenant_id: str, user_id: str) -> str:
    """The audit trail's name for the user: a keyed hash with the tenant's secret, so the
    record proves which request was served without keeping who it was about."""
    tenant = TenantRegistry(settings.tenants_file).get(tenant_id)
    if tenant is None:
        raise TenantError(f"unknown tenant {tenant_id!r}; `lakepulse tenants list` shows them")
    return hmac.new(tenant.secret, user_id.encode(), hashlib.sha256).hexdigest()


def _sql_list(values: set[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


def identities(settings: Settings, tenant_id: str, user_id: str) -> set[str]:
    """The user id and every anonymous id seen with it (identify, calls carrying both, alias)."""
    found = {user_id}
    path = settings.bronze_events_path
    if not (path / "_delta_log").exists():
        return found
    conn = connect()
    try:
        rows = conn.execute(
            f"select distinct anonymous_id, previous_id from delta_scan('{path}') "
            "where tenant_id = ? and user_id = ?",
            [tenant_id, user_id],
        ).fetchall()
    finally:
        conn.close()
    for anonymous_id, previous_id in rows:
        found |= {v for v in (anonymous_id, previous_id) if v}
    return found


def _mentions(line: bytes, needles: list[bytes]) -> bool:
    return any(n in line for n in needles)


def scrub_landing(settings: Settings, tenant_id: str, ids: set[str]) -> tuple[int, int]:
    """Rewrite the tenant's landing files without any line naming one of ``ids`` (as a JSON
    string value, which covers events and the payloads of rejected ones)."""
    log = LandingLog(settings.landing_dir)
    directory = log.partition_dir(tenant_id)
    needles = [orjson.dumps(i) for i in ids]
    tenant = orjson.dumps(tenant_id)
    files = lines_removed = 0
    for f in log.files():
        if f.path.parent != directory:
            continue
        body = f.path.read_bytes()
        if not _mentions(body, needles):
            continue
        kept, removed = [], 0
        for line in body.splitlines(keepends=True):
            if tenant in line and _mentions(line, needles):
                removed += 1
            else:
                kept.append(line)
        if not removed:
            continue
        log.rewrite(f, b"".join(kept))
        files += 1
        lines_removed += removed
    return files, lines_removed


def purge_old_versions(path: Path) -> int:
    """VACUUM with no retention, then a checkpoint and removal of the log entries before it:
    after this the table's directory holds only what its current version needs."""
    table = DeltaTable(str(path))
    removed = table.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
    table.create_checkpoint()
    version = table.version()
    log = path / "_delta_log"
    for entry in log.iterdir():
        stem = entry.name.split(".", 1)[0]
        if stem.isdigit() and int(stem) < version:
            entry.unlink()
    return len(removed)


def erase_bronze(settings: Settings, tenant_id: str, ids: set[str]) -> tuple[int, int, int]:
    listed = _sql_list(ids)
    tenant = "'" + tenant_id.replace("'", "''") + "'"
    events = rejected = vacuumed = 0
    path = settings.bronze_events_path
    if (path / "_delta_log").exists():
        metrics = DeltaTable(str(path)).delete(
            f"tenant_id = {tenant} and (user_id in ({listed}) or anonymous_id in ({listed}) "
            f"or previous_id in ({listed}))"
        )
        events = int(metrics.get("num_deleted_rows", 0))
        vacuumed += purge_old_versions(path)
    path = settings.bronze_rejected_path
    if (path / "_delta_log").exists():
        mentions = " or ".join(
            f"payload like '%{orjson.dumps(i).decode().replace(chr(39), chr(39) * 2)}%'"
            for i in sorted(ids)
        )
        metrics = DeltaTable(str(path)).delete(f"tenant_id = {tenant} and ({mentions})")
        rejected = int(metrics.get("num_deleted_rows", 0))
        vacuumed += purge_old_versions(path)
    return events, rejected, vacuumed
