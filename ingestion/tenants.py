"""Tenant registry: write keys to tenants, and each tenant's secret for PII hashing.

Write keys are stored only as SHA-256 digests, so the registry file alone does not let anyone
send events as a tenant. The file is replaced atomically and re-read by the collector when it
changes, so ``lakepulse tenants add`` takes effect without a restart.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

TENANT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
RECHECK_S = 1.0
"""How long a resolved write key is trusted before the registry file is looked at again: the
collector resolves a key per request, and a ``stat`` plus a SHA-256 each time showed in its
profile. An unknown key always re-reads a changed file, so a new tenant works at once; a key
removed from the file stops working within this time."""


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    secret: bytes
    """Per-tenant HMAC key for emails and phone numbers."""


class TenantError(ValueError):
    """A tenant name or key the registry cannot accept."""


def _digest(write_key: str) -> str:
    return hashlib.sha256(write_key.encode()).hexdigest()


class TenantRegistry:
    """Reads and updates ``tenants.json``; cheap to call per request (cached by mtime, and
    resolved keys for up to :data:`RECHECK_S`)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._by_digest: dict[str, Tenant] = {}
        self._tenants: dict[str, Tenant] = {}
        self._by_key: dict[str, Tenant] = {}
        """Write keys seen since the file was last read (cleared when it changes)."""
        self._checked = 0.0

    def _load(self) -> None:
        self._checked = time.monotonic()
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._mtime, self._by_digest, self._tenants, self._by_key = None, {}, {}, {}
            return
        if mtime == self._mtime:
            return
        data = json.loads(self.path.read_text())
        tenants = {
            tid: Tenant(tid, bytes.fromhex(info["secret"])) for tid, info in data["tenants"].items()
        }
        self._tenants, self._by_key = tenants, {}
        self._by_digest = {
            digest: tenants[tid]
            for tid, info in data["tenants"].items()
            for digest in info["write_key_sha256"]
        }
        self._mtime = mtime

    def _save(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def _raw(self) -> dict:
        if self.path.exists():
            return json.loads(self.path.read_text())
        return {"tenants": {}}

    def resolve(self, write_key: str) -> Tenant | None:
        """The tenant a write key belongs to, or None for a missing or unknown key."""
        if not write_key:
            return None
        with self._lock:
            tenant = self._by_key.get(write_key)
            if tenant is not None and time.monotonic() - self._checked < RECHECK_S:
                return tenant
            self._load()
            tenant = self._by_digest.get(_digest(write_key))
            if tenant is not None:
                self._by_key[write_key] = tenant
            return tenant

    def tenants(self) -> list[str]:
        with self._lock:
            self._load()
            return sorted(self._tenants)

    def get(self, tenant_id: str) -> Tenant | None:
        with self._lock:
            self._load()
            return self._tenants.get(tenant_id)

    def add(self, tenant_id: str, write_key: str | None = None) -> str:
        """Register a tenant (or a further key for an existing one); returns the write key."""
        if not TENANT_ID_RE.match(tenant_id):
            raise TenantError(
                f"tenant name {tenant_id!r} must be 1-63 characters of a-z, 0-9, '-' or '_', "
                "starting with a letter or digit"
            )
        write_key = write_key or "lp_" + secrets.token_urlsafe(24)
        with self._lock:
            data = self._raw()
            entry = data["tenants"].setdefault(
                tenant_id, {"secret": secrets.token_hex(32), "write_key_sha256": []}
            )
            digest = _digest(write_key)
            for other, info in data["tenants"].items():
                if other != tenant_id and digest in info["write_key_sha256"]:
                    raise TenantError(f"that write key already belongs to tenant {other!r}")
            if digest not in entry["write_key_sha256"]:
                entry["write_key_sha256"].append(digest)
            self._save(data)
            self._mtime = None
        return write_key
