"""dbt-duckdb plugin that loads the offline Delta extension into dbt's connections, and sets
their memory limit when ``LAKEPULSE_DUCKDB_MEMORY_LIMIT`` asks for one.

Listed under ``plugins:`` in ``dbt_project/profiles.yml``.
"""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin

from lakepulse.core.duck import apply_memory_limit, load_delta


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:
        apply_memory_limit(conn)
        load_delta(conn)
