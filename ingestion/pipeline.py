"""dlt source and pipeline: landing log -> Delta bronze (``raw.events``, ``raw.events_rejected``).

Each resource reads only landing files it has not loaded (a cursor per landing partition in
dlt state, see ``ingestion.landing.pending_files``), through Arrow (no Python per event), drops
rows whose key is already in bronze or earlier in the load, and appends. A load that died
half-way is aborted, not re-applied, so its files are read again and what it did commit is
dropped as already present: every event lands once. docs/bronze.md has the reasoning.

Arrow, Delta and the contract's schemas are imported by the functions that load, not by this
module: the Dagster code server builds the bronze asset from :func:`bronze_source` and
:func:`bronze_pipeline` and must stay light (no pyarrow, numpy, pandas or deltalake).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dlt
import orjson

from ingestion.landing import (
    Conflict,
    LandingFile,
    LandingLog,
    advance_cursor,
    pending_files,
    read_files,
)
from lakepulse.core.delta_tables import ensure_upkeep_properties
from lakepulse.core.locks import exclusive_lock
from lakepulse.core.settings import BRONZE_PIPELINE_NAME, Settings

if TYPE_CHECKING:
    import pyarrow as pa

DATASET_NAME = "raw"
DEDUPE_WINDOW = timedelta(minutes=30)
"""How far back (in receive time) bronze is searched for an earlier copy of a message. SDK
retries come within minutes, and a re-read or re-offered file carries its original receive
times; at 1,000 events/s half an hour is 1.8 M keys to read per load."""
MAX_FILES_PER_CHUNK = 500
"""Files read into one Arrow table; bounds memory when a backlog has built up."""


@dataclass(frozen=True)
class TableSpec:
    name: str
    kind: str
    schema_name: str
    """The name of the table's landing schema in :mod:`ingestion.contract` (:attr:`schema`)."""
    key: tuple[str, str]
    stats_columns: tuple[str, ...] = ("received_at", "loaded_at")
    """The columns with file statistics: the loader's window on ``received_at``
    (:func:`_existing_keys`), and the increments' and the bronze suite's reads by
    ``loaded_at`` (see :mod:`lakepulse.core.delta_tables`)."""

    @property
    def schema(self) -> pa.Schema:
        """The landing schema (an Arrow one: imported when a load reads it)."""
        from ingestion import contract

        return getattr(contract, self.schema_name)


EVENTS = TableSpec("events", "events", "LANDING_SCHEMA", ("tenant_id", "message_id"))
REJECTED = TableSpec(
    "events_rejected", "rejected", "REJECTED_SCHEMA", ("tenant_id", "rejection_id")
)


def _micros_to_ts(column: pa.Array) -> pa.Array:
    import pyarrow as pa

    return column.cast(pa.timestamp("us", tz="UTC"))


def to_bronze(table: pa.Table, spec: TableSpec, loaded_at_micros: int) -> pa.Table:
    """Cast landing rows to bronze types, add load metadata, keep the last copy of each key."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in ("timestamp", "original_timestamp", "sent_at", "received_at"):
        if name in table.column_names:
            idx = table.column_names.index(name)
            table = table.set_column(
                idx,
                pa.field(name, pa.timestamp("us", tz="UTC"), table.schema.field(name).nullable),
                _micros_to_ts(table[name]),
            )
    table = table.append_column(
        pa.field("loaded_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.array([loaded_at_micros] * table.num_rows, pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        ),
    )
    time_column = "timestamp" if spec is EVENTS else "received_at"
    table = table.append_column(
        pa.field("event_date", pa.date32(), nullable=False),
        pc.cast(table[time_column], pa.date32()),
    )
    schema = table.schema
    for name in spec.key:  # keys are never null (the contract guarantees it); say so to dlt
        idx = schema.get_field_index(name)
        schema = schema.set(idx, schema.field(idx).with_nullable(False))
    return dedupe_last(table.cast(schema), spec.key)


def dedupe_last(table: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """Keep one row per key within a batch (the last one read)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return table
    indexed = table.select(list(key)).append_column(
        "_row", pa.array(range(table.num_rows), pa.int64())
    )
    keep = indexed.group_by(list(key), use_threads=False).aggregate([("_row", "max")])["_row_max"]
    if len(keep) == table.num_rows:
        return table
    return table.take(pc.take(keep, pc.sort_indices(keep)))


def quarantine_conflicts(landing: LandingLog, conflicts: list[Conflict]) -> None:
    """Lines that do not fit bronze's types become rejected landing rows (loaded into
    ``raw.events_rejected`` by the next pass): never a crashed load, never a silent drop.
    Their ids derive from file and line, so a retried load quarantines them only once."""
    by_tenant: dict[str, list[dict]] = {}
    for c in conflicts:
        try:
            row = orjson.loads(c.line)
        except orjson.JSONDecodeError:
            row = {}
        row = row if isinstance(row, dict) else {}
        tenant = str(row.get("tenant_id") or "unknown")
        by_tenant.setdefault(tenant, []).append(
            {
                "tenant_id": tenant,
                "rejection_id": hashlib.sha256(f"{c.file.name}:{c.line_no}".encode()).hexdigest()[
                    :32
                ],
                "message_id": str(row["message_id"]) if row.get("message_id") is not None else None,
                "received_at": row.get("received_at")
                if isinstance(row.get("received_at"), int)
                else c.file.published_micros,
                "reason": f"type conflict in landing file {c.file.name} line {c.line_no}: {c.error}",
                "payload": c.line.decode(errors="replace")[:32_768],
            }
        )
    for tenant, rows in by_tenant.items():
        landing.write(tenant, "rejected", rows)


def _existing_keys(table_path: Path, batch: pa.Table, spec: TableSpec) -> pa.Table:
    """Keys of ``batch`` already in the Delta table, looked up where a duplicate can be: rows
    received up to ``DEDUPE_WINDOW`` before the batch (file statistics skip older files), and
    for events in the event-date partitions the batch touches (a day either side: a retried
    message's corrected timestamp can cross midnight). The cost follows the batch and the
    window, not the history. A copy of a message received more than the window after the
    original is not caught here; ``stg_events`` deduplicates over all history."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    key = list(spec.key)
    if not (table_path / "_delta_log").exists():
        return batch.select(key).schema.empty_table()
    dataset = DeltaTable(str(table_path)).to_pyarrow_dataset()
    first_received = pc.min(batch["received_at"]).as_py()
    where = ds.field("received_at") >= pa.scalar(
        first_received - DEDUPE_WINDOW, batch["received_at"].type
    )
    if spec is EVENTS:
        low, high = pc.min_max(batch["event_date"]).values()
        day = timedelta(days=1)
        where &= (ds.field("event_date") >= pa.scalar(low.as_py() - day, pa.date32())) & (
            ds.field("event_date") <= pa.scalar(high.as_py() + day, pa.date32())
        )
    # Filtering on the batch's ids during the scan keeps only candidate rows in memory.
    where &= ds.field(key[-1]).isin(pc.unique(batch[key[-1]]))
    stored = dataset.to_table(columns=key, filter=where)
    return stored.join(batch.select(key).cast(stored.schema), keys=key, join_type="left semi")


def _without(table: pa.Table, keys: pa.Table, key: tuple[str, ...]) -> pa.Table:
    if keys.num_rows == 0 or table.num_rows == 0:
        return table
    kept = table.join(
        keys.cast(table.select(list(key)).schema), keys=list(key), join_type="left anti"
    )
    return kept.select(table.column_names).cast(table.schema)  # a join relaxes nullability


def _landing_resource(spec: TableSpec, landing: LandingLog, lake_dir: Path):
    columns = {"event_date": {"partition": True}} if spec is EVENTS else None
    table_path = lake_dir / DATASET_NAME / spec.name

    @dlt.resource(
        name=spec.name,
        primary_key=list(spec.key),
        # Append, not merge: a Delta merge reads every key in the table (seconds at 10 M
        # rows). Rows already in bronze are dropped here instead, reading only the partitions
        # a batch touches; together with aborting half-done loads (see prepare_pipeline) this
        # keeps bronze unique on the key.
        write_disposition="append",
        table_format="delta",
        columns=columns,
    )
    def read_landing() -> Iterator[pa.Table]:
        import pyarrow.compute as pc

        state = dlt.current.resource_state()
        cursors: dict = state.setdefault("cursors", {})
        by_partition: dict[str, list[LandingFile]] = {}
        for f in landing.files(spec.kind):
            by_partition.setdefault(f.partition, []).append(f)
        loaded_at = time.time_ns() // 1000
        # Keys yielded earlier in this run (not in Delta yet), with their partitions and latest
        # receive time: a copy can only be in the same landing partition (same tenant) and
        # within DEDUPE_WINDOW, so a long backlog is not compared against all of itself.
        seen: list[tuple[set[str], object, pa.Table]] = []
        yielded = False
        pending = [
            f
            for partition, files in sorted(by_partition.items())
            for f in pending_files(files, cursors.get(partition, {}))
        ]
        # Chunks span partitions: one key lookup per chunk, whatever the number of tenants.
        for start in range(0, len(pending), MAX_FILES_PER_CHUNK):
            chunk = pending[start : start + MAX_FILES_PER_CHUNK]
            conflicts: list[Conflict] = []
            table = read_files(chunk, spec.schema, conflicts)
            quarantine_conflicts(landing, conflicts)
            if table.num_rows:
                table = to_bronze(table, spec, loaded_at)
                partitions = {f.partition for f in chunk}
                window_start = pc.min(table["received_at"]).as_py() - DEDUPE_WINDOW
                for earlier_partitions, latest, keys in seen:
                    if earlier_partitions & partitions and latest >= window_start:
                        table = _without(table, keys, spec.key)
                table = _without(table, _existing_keys(table_path, table, spec), spec.key)
                if table.num_rows:
                    latest = pc.max(table["received_at"]).as_py()
                    seen.append((partitions, latest, table.select(list(spec.key))))
                    yielded = True
                    yield table
            for partition in {f.partition for f in chunk}:
                loaded = [f for f in chunk if f.partition == partition]
                cursors[partition] = advance_cursor(cursors.get(partition, {}), loaded)
        if not yielded and not (table_path / "_delta_log").exists():
            # A first load with nothing to load still creates the table (empty, with bronze's
            # schema and partitioning), so dbt, `lakepulse sql` and the checks can read it.
            yield to_bronze(spec.schema.empty_table(), spec, loaded_at)

    return read_landing


@dlt.source(name="landing_log", max_table_nesting=0)
def landing_log(landing_dir: str, lake_dir: str):
    """Both bronze tables from one landing log; resources keep separate cursors."""
    landing = LandingLog(landing_dir)
    return [
        _landing_resource(EVENTS, landing, Path(lake_dir)),
        _landing_resource(REJECTED, landing, Path(lake_dir)),
    ]


def bronze_source(settings: Settings):
    return landing_log(str(settings.landing_dir), str(settings.lake_dir))


def _shorten_load_polling() -> None:
    """dlt's loader checks for finished jobs once a second (a hard-coded ``Load`` attribute in
    dlt 1.31), which adds about a second to every minute's load: a Delta append is followed by
    a commit job that waits for the next poll. Poll every 20 ms instead."""
    from dlt.load import load as dlt_load

    original = dlt_load.Load.__init__
    if getattr(original, "_lakepulse_patched", False):
        return

    def __init__(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        if hasattr(self, "_run_loop_sleep_duration"):
            self._run_loop_sleep_duration = 0.02

    __init__._lakepulse_patched = True  # type: ignore[attr-defined]
    dlt_load.Load.__init__ = __init__


_shorten_load_polling()


def bronze_pipeline(settings: Settings) -> dlt.Pipeline:
    """The dlt pipeline writing Delta tables under ``$LAKEPULSE_HOME/lake/raw``."""
    settings.ensure_dirs()
    # dlt keeps a copy of every loaded file in its package archive unless told otherwise: a
    # second, unbounded copy of bronze that retention and erasure would have to chase.
    os.environ.setdefault("LOAD__DELETE_COMPLETED_JOBS", "true")
    return dlt.pipeline(
        pipeline_name=BRONZE_PIPELINE_NAME,
        destination=dlt.destinations.filesystem(bucket_url=settings.lake_dir.as_uri()),
        dataset_name=DATASET_NAME,
        pipelines_dir=str(settings.dlt_pipelines_dir),
    )


@contextmanager
def loader_lock(settings: Settings) -> Iterator[bool]:
    """One loader at a time per data directory (CLI and Dagster alike): two concurrent
    appends could both miss each other's rows when deduplicating. The pipeline lock is taken
    first (``Settings.pipeline_lock_path``): a load, and erasure, retention and compaction,
    which hold this lock, wait for the pipeline worker's cycle to end rather than write
    under it."""
    with (
        exclusive_lock(settings.pipeline_lock_path),
        exclusive_lock(settings.dlt_pipelines_dir / "loader.lock"),
    ):
        yield True


def _drop_interrupted_schema_writes(pipeline: dlt.Pipeline) -> None:
    """dlt 1.31 saves a schema by writing a temporary file (16 hex digits, no extension) beside
    it and renaming it; a loader killed in between leaves that file, which dlt then lists as a
    schema, records in the pipeline state, and fails on at every later run (InvalidSchemaName
    at step=sync). Remove such files and their names in the state. Runs under the loader lock,
    so no other loader's write is in flight."""
    working = Path(pipeline.working_dir)
    schemas = working / "schemas"
    leftovers = {
        p.name for p in (schemas.iterdir() if schemas.exists() else []) if "." not in p.name
    }
    if not leftovers:
        return
    for name in leftovers:
        (schemas / name).unlink()
    state_path = working / "state.json"
    if state_path.exists():
        state = orjson.loads(state_path.read_bytes())
        if leftovers & set(state.get("schema_names") or []):
            state["schema_names"] = [n for n in state["schema_names"] if n not in leftovers]
            tmp = state_path.with_suffix(".json.tmp")
            tmp.write_bytes(orjson.dumps(state))
            os.replace(tmp, state_path)


def prepare_pipeline(pipeline: dlt.Pipeline) -> None:
    """Repair what a crash can leave behind before a load. A half-done load is aborted instead
    of re-applied: an append re-applied after its Delta commit would duplicate rows. dlt
    restores the cursors to before that package, so its files are read again, and the rows the
    crashed load did commit are dropped as already present."""
    _drop_interrupted_schema_writes(pipeline)
    if pipeline.has_pending_data:
        pipeline.abort_packages()


@contextmanager
def prepared_bronze_pipeline(settings: Settings) -> Iterator[dlt.Pipeline]:
    """The load's ritual, written once for ``lakepulse ingest`` and the Dagster asset: the
    loader lock, then a fresh pipeline whose half-done packages and interrupted schema writes
    are cleared (:func:`prepare_pipeline`). Run a fresh :func:`bronze_source` through it: a dlt
    source's schema is mutated by a run and must not be reused."""
    with loader_lock(settings):
        pipeline = bronze_pipeline(settings)
        prepare_pipeline(pipeline)
        yield pipeline
        # dlt creates a bronze table at its first load; its properties follow, under the lock
        for spec in (EVENTS, REJECTED):
            ensure_upkeep_properties(
                settings.lake_dir / DATASET_NAME / spec.name, spec.stats_columns
            )


def run_ingest(settings: Settings):
    """One landing-to-bronze load without Dagster (``lakepulse ingest``)."""
    with prepared_bronze_pipeline(settings) as pipeline:
        return pipeline.run(bronze_source(settings))
