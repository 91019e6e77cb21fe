"""Erasure of one user (GDPR art. 17, CCPA deletion): every event of the user and of the
devices that identified as the user goes from the landing log, bronze and every mart, and no
old copy stays on disk. What remains is an audit record holding a keyed hash of the user id,
never the id.

Where copies hide, and how each goes:
- landing log: each file holding the user's lines is rewritten without them (same name, so
  the loader's cursors stay right; tmp + fsync + rename as the collector writes);
- bronze Delta tables: a delete, then VACUUM with zero retention (the rewritten-away files
  go) and a checkpoint with the older log entries removed (their column statistics could
  name the user);
- trigger firings (Delta, with their outbox marks): a delete and the same purge;
- dlt's package archive: completed jobs are deleted after each load (see bronze_pipeline);
- the DuckDB warehouse and its read replica: rebuilt, then copied into fresh files (DuckDB
  does not zero freed blocks);
- PostgreSQL: republished by the rebuild; the swap drops the old tables and their files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from ingestion.erasure import erase_bronze, identities, scrub_landing, user_hash
from ingestion.pipeline import loader_lock, run_ingest
from lakepulse.core.settings import Settings
from lakepulse.operations.rebuild import rebuild
from lakepulse.triggers.firing import erase_firings
from lakepulse.warehouse.replica import rewrite_warehouse


@dataclass
class ErasureReport:
    tenant_id: str
    user_hash: str
    erased_at: str
    identities: int = 0
    landing_files_rewritten: int = 0
    landing_lines_removed: int = 0
    bronze_rows_removed: int = 0
    firings_removed: int = 0
    rejected_rows_removed: int = 0
    files_vacuumed: int = 0
    steps: list[str] = field(default_factory=list)


def audit(settings: Settings, report: ErasureReport) -> Path:
    path = settings.erasure_audit_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        handle.write(orjson.dumps(asdict(report)) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


def erase_user(
    settings: Settings,
    tenant_id: str,
    user_id: str,
    progress: Callable[[str], None] = lambda _: None,
) -> ErasureReport:
    """Remove one user everywhere. Loads what is pending first (so no load package holds the
    user's rows), then works under the loader lock; once bronze is clean, rebuilds the
    warehouse (and republishes) with a full refresh, as incremental models would keep the
    user's rows."""
    report = ErasureReport(
        tenant_id=tenant_id,
        user_hash=user_hash(settings, tenant_id, user_id),
        erased_at=datetime.now(UTC).isoformat(),
    )
    progress("loading pending landing files into bronze")
    run_ingest(settings)
    with loader_lock(settings):
        ids = identities(settings, tenant_id, user_id)
        report.identities = len(ids)
        progress(f"removing {len(ids)} identities from the landing log")
        report.landing_files_rewritten, report.landing_lines_removed = scrub_landing(
            settings, tenant_id, ids
        )
        report.steps.append("landing")
        progress("deleting from bronze and vacuuming old versions")
        report.bronze_rows_removed, report.rejected_rows_removed, report.files_vacuumed = (
            erase_bronze(settings, tenant_id, ids)
        )
        report.steps.append("bronze")
        progress("deleting the user's trigger firings")
        report.firings_removed = erase_firings(settings, tenant_id, ids)
        report.steps.append("firings")
    progress("rebuilding the marts from bronze")
    rebuild(settings, full_refresh=True, capture=True)
    report.steps.append("marts")
    progress("rewriting the warehouse and its replica into fresh files")
    rewrite_warehouse(settings)
    report.steps.append("warehouse")
    audit(settings, report)
    return report
