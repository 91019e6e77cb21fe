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

The names callers use are re-exported here.
"""

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
