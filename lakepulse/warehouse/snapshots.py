"""Retention inside the warehouse: the experiment snapshot history is the one dbt-owned table
whose rows are kept across builds (an incremental model that only appends), so old snapshots
are deleted here, under the loader lock, when no build runs."""

from __future__ import annotations

from ingestion.retention import cutoff
from lakepulse.core.duck import connect
from lakepulse.core.settings import Settings


def expire_experiment_snapshots(settings: Settings, days: int) -> dict:
    """Old snapshots of fct_experiment_snapshots. The always-valid columns of the rows kept
    already fold in the dropped ones, so results stay valid."""
    if not settings.warehouse_path.exists():
        return {"rows_removed": 0}
    conn = connect(settings.warehouse_path)
    try:
        exists = conn.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'marts' and table_name = 'fct_experiment_snapshots'"
        ).fetchone()[0]
        if not exists:
            return {"rows_removed": 0}
        # Keep each series' latest snapshot whatever its age: it carries the running values.
        removed = conn.execute(
            "delete from marts.fct_experiment_snapshots s where snapshot_at < ? and snapshot_at < "
            "(select max(snapshot_at) from marts.fct_experiment_snapshots l where "
            "l.tenant_id = s.tenant_id and l.experiment_id = s.experiment_id "
            "and l.variation_id = s.variation_id and l.metric = s.metric)",
            [cutoff(days)],
        ).fetchone()[0]
        return {"rows_removed": int(removed)}
    finally:
        conn.close()
