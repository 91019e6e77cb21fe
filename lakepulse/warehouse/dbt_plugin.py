"""dbt-duckdb plugin that loads the offline Delta extension into dbt's connections.

Listed under ``plugins:`` in ``dbt_project/profiles.yml``.
"""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin

from lakepulse.core.duck import load_delta


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:
        load_delta(conn)
