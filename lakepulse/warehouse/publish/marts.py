"""Which marts are served to PostgreSQL, and how: read from each mart model's YAML
``config: meta: publish:`` as dbt parsed it (the manifest), so a new mart is a change to its
own YAML only::

    config:
      meta:
        tier: session
        publish:
          index: [tenant_id, session_date]     # the index dashboards filter by
          delta_key: [tenant_id, session_id]   # optional: published as a delta by this key
          customer_level: true                 # a row per user or session

``publish: false`` keeps a mart out of PostgreSQL. Every model under ``models/marts/`` must say
one or the other, and ``customer_level`` has no default: who may read a new mart's rows is
decided in its YAML, never by omission. A ``delta_key`` must be unique (a uniqueness test on it
in the same YAML) and, like the index, name documented columns."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PUBLISH_KEY = "publish"
MART_FOLDER = "marts"


class ServingConfigError(ValueError):
    """A mart's ``meta: publish:`` is missing or wrong; the message names the YAML file."""


@dataclass(frozen=True)
class ServedMart:
    """A mart published to PostgreSQL schema ``marts``."""

    name: str
    index: tuple[str, ...]
    """Columns of the index each published table gets for dashboard filters (tenant, then date)."""
    delta_key: tuple[str, ...] | None = None
    """The unique key a publish sends changed rows by; None: copied whole and swapped in."""
    customer_level: bool = False
    """A row per user or session: readable only by logins granted customer-level access."""


def served_marts(manifest_path: Path) -> dict[str, ServedMart]:
    """The served marts of the project as dbt last parsed it into ``manifest_path``. Read again
    only when dbt wrote the manifest again (the worker asks every cycle)."""
    return _served(manifest_path, manifest_path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _served(manifest_path: Path, written_ns: int) -> dict[str, ServedMart]:
    return served_marts_of(json.loads(manifest_path.read_text()))


def served_marts_of(manifest: Mapping[str, Any]) -> dict[str, ServedMart]:
    """The served marts of a parsed manifest, in the manifest's order; raises
    :class:`ServingConfigError` listing every mart whose ``publish`` is missing or wrong."""
    served: dict[str, ServedMart] = {}
    errors: list[str] = []
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model" or node.get("fqn", [None, None])[1] != MART_FOLDER:
            continue
        try:
            mart = _served_mart(node)
        except ServingConfigError as err:
            errors.append(str(err))
            continue
        if mart is not None:
            served[mart.name] = mart
    if errors:
        raise ServingConfigError("\n".join(sorted(errors)))
    return served


def _served_mart(node: Mapping[str, Any]) -> ServedMart | None:
    name = node["name"]
    where = f"{_yaml_of(node)}: model {name}: config.meta.{PUBLISH_KEY}"
    meta = node.get("config", {}).get("meta") or {}
    if PUBLISH_KEY not in meta:
        raise ServingConfigError(
            f"{where} is missing: every mart says whether BI reads it "
            f"(`{PUBLISH_KEY}: false`, or a mapping with `index` and `customer_level`)"
        )
    spec = meta[PUBLISH_KEY]
    if spec is False:
        return None
    if not isinstance(spec, Mapping):
        raise ServingConfigError(f"{where} must be `false` or a mapping, not {spec!r}")
    unknown = set(spec) - {"index", "delta_key", "customer_level"}
    if unknown:
        raise ServingConfigError(f"{where} has unknown keys {sorted(unknown)}")
    if not isinstance(spec.get("customer_level"), bool):
        raise ServingConfigError(
            f"{where}.customer_level must be true or false (a row per user or session?)"
        )
    columns = set(node.get("columns") or {})
    index = _columns(spec.get("index"), f"{where}.index", columns)
    if not index:
        raise ServingConfigError(f"{where}.index is missing: the columns dashboards filter by")
    delta_key = _columns(spec.get("delta_key"), f"{where}.delta_key", columns)
    return ServedMart(name, index, delta_key or None, spec["customer_level"])


def _columns(value: Any, where: str, documented: set[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value) or not value:
        raise ServingConfigError(f"{where} must be a list of column names, not {value!r}")
    unknown = [c for c in value if c not in documented]
    if unknown:
        raise ServingConfigError(
            f"{where} names {unknown}, not among the model's columns {sorted(documented)}"
        )
    return tuple(value)


def _yaml_of(node: Mapping[str, Any]) -> str:
    """``dbt_project/models/marts/<mart>.yml``: where the mart's properties are written."""
    patch = node.get("patch_path") or ""
    return (
        "dbt_project/" + patch.split("://", 1)[1] if "://" in patch else node["original_file_path"]
    )
