"""Publishing marts to PostgreSQL for BI: atomic swaps, a read-only role, row-level security.

BI tools never touch the DuckDB warehouse (one writer or many readers, never both). Which marts
are served, by which index, delta key and audience, is each mart's YAML (``meta: publish:``,
read from the manifest by :mod:`.marts`). One concern per module:

- :mod:`.access`: roles, tenant logins and row-level security;
- :mod:`.swap`: a mart copied whole and swapped in by renames in one transaction, and the
  fingerprints that leave an unchanged mart alone;
- :mod:`.delta`: the large marts with a unique key, sent as the rows that changed;
- :mod:`.freshness`: ``marts.mart_publish_freshness``, when each mart was last swapped in;
- :mod:`.publisher`: one publish, choosing among them per mart.

The names callers use are re-exported here, each imported from its module when first asked
for (PEP 562): the Dagster code server reads :func:`served_marts_of` (:mod:`.marts`, the
manifest only) and must not import psycopg and DuckDB with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakepulse.warehouse.publish.access import (
        ADMIN_SCHEMA,
        BI_ROLE,
        CUSTOMER_LEVEL_ROLE,
        SCHEMA,
        create_tenant_login,
        ensure_serving,
        tenant_role_name,
    )
    from lakepulse.warehouse.publish.change_log import CHANGE_LOG_SCHEMA
    from lakepulse.warehouse.publish.freshness import FRESHNESS_TABLE
    from lakepulse.warehouse.publish.marts import (
        ServedMart,
        ServingConfigError,
        served_marts,
        served_marts_of,
    )
    from lakepulse.warehouse.publish.publisher import PublishResult, publish
    from lakepulse.warehouse.publish.swap import FAULT_PAUSE, fingerprint

_MODULE_OF = {
    "ADMIN_SCHEMA": "access",
    "BI_ROLE": "access",
    "CUSTOMER_LEVEL_ROLE": "access",
    "SCHEMA": "access",
    "create_tenant_login": "access",
    "ensure_serving": "access",
    "tenant_role_name": "access",
    "CHANGE_LOG_SCHEMA": "change_log",
    "FRESHNESS_TABLE": "freshness",
    "ServedMart": "marts",
    "ServingConfigError": "marts",
    "served_marts": "marts",
    "served_marts_of": "marts",
    "PublishResult": "publisher",
    "publish": "publisher",
    "FAULT_PAUSE": "swap",
    "fingerprint": "swap",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # asked once: later lookups find it without this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})


__all__ = [
    "ADMIN_SCHEMA",
    "BI_ROLE",
    "CHANGE_LOG_SCHEMA",
    "CUSTOMER_LEVEL_ROLE",
    "FAULT_PAUSE",
    "FRESHNESS_TABLE",
    "SCHEMA",
    "PublishResult",
    "ServedMart",
    "ServingConfigError",
    "create_tenant_login",
    "ensure_serving",
    "fingerprint",
    "publish",
    "served_marts",
    "served_marts_of",
    "tenant_role_name",
]
