"""dbt-duckdb plugin that loads the offline Delta extension into dbt's connections, and sets
their memory limit and threads when ``LAKEPULSE_DUCKDB_MEMORY_LIMIT`` and
``LAKEPULSE_DUCKDB_THREADS`` ask for them.

Listed under ``plugins:`` in ``dbt_project/profiles.yml``.
"""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin

from lakepulse.core.duck import apply_resource_limits, load_delta


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:
        apply_resource_limits(conn)
        load_delta(conn)
