"""Tenant registry: resolved write keys are cached, but never past a change that matters."""

from __future__ import annotations

import json

import pytest

from ingestion import tenants as tenants_module
from ingestion.tenants import TenantRegistry


def test_a_key_added_after_others_resolved_works_at_once(tmp_path):
    registry = TenantRegistry(tmp_path / "tenants.json")
    first = registry.add("acme")
    assert registry.resolve(first).tenant_id == "acme"
    second = TenantRegistry(tmp_path / "tenants.json").add("globex")  # another process
    assert registry.resolve(second).tenant_id == "globex"
    assert registry.resolve("lp_unknown") is None


def test_a_removed_key_stops_resolving_once_the_cache_is_rechecked(tmp_path, monkeypatch):
    path = tmp_path / "tenants.json"
    registry = TenantRegistry(path)
    key = registry.add("acme")
    assert registry.resolve(key) is not None
    data = json.loads(path.read_text())
    data["tenants"]["acme"]["write_key_sha256"] = []
    path.write_text(json.dumps(data))
    monkeypatch.setattr(tenants_module, "RECHECK_S", 0.0)
    assert registry.resolve(key) is None


@pytest.mark.parametrize("key", ["", "lp_not-a-key"])
def test_missing_or_unknown_keys_are_never_cached(tmp_path, key):
    registry = TenantRegistry(tmp_path / "tenants.json")
    registry.add("acme")
    assert registry.resolve(key) is None
    assert key not in registry._by_key
