"""Firing triggers exactly once: candidates from the trigger models -> recorded firings ->
`Trigger Fired` events written back through the landing log.

One run (:func:`fire`), called by ``lakepulse triggers fire`` and by Dagster after the marts:

1. install ``triggers.yml`` if it is valid (else the last valid copy keeps running);
2. finish the write-back of firings recorded by a run that was killed before it wrote their
   events (the outbox: ``firings`` anti-join ``firings_written``);
3. read each trigger's candidates from its dbt model (in the read replica), give each its
   deterministic ``firing_id`` (sha256 of trigger, tenant, user or metric, occurrence key),
   drop those already recorded and those inside the cooldown of a recorded (or an earlier
   candidate's) firing of the same trigger, tenant and user;
4. record the new firings in one Delta MERGE that inserts only firing_ids not in the table:
   a firing is recorded once, whatever ran before;
5. write each new firing's event to the landing log (messageId = firing_id, so bronze keeps
   one row however often it is written), then mark it written.

A SIGKILL between any two steps loses nothing: a firing not recorded is still a candidate
next run (same firing_id), one recorded but not written is written by step 2, one written but
not marked is written again and deduplicated by bronze. Runs take a file lock, so two never
interleave.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from ingestion.intake import write_back
from lakepulse.core.duck import connect, memory_cursor
from lakepulse.core.locks import exclusive_lock
from lakepulse.core.settings import Settings
from lakepulse.triggers.definitions import Definitions, Trigger, assign_arm, install
from lakepulse.warehouse.trigger_tables import (
    FIRINGS_SCHEMA,
    WRITTEN_SCHEMA,
    configure_firing_tables,
    ensure_trigger_tables,
    firings_written_path,
)

EVENT_NAME = "Trigger Fired"
LIBRARY = {"name": "lakepulse-triggers", "version": "1"}


def firing_id(trigger: str, tenant_id: str, subject: str | None, occurrence_key: str) -> str:
    """Deterministic id of one firing: the same occurrence always gets the same id, in every
    run, after a replay and on every machine."""
    text = f"{trigger}|{tenant_id}|{subject or ''}|{occurrence_key}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def subject_of(user_id: str | None, payload: str | None) -> str:
    """Whom a firing is about, for its id and its cooldown: the user, else (tenant-level
    kinds) the payload's ``subject`` (a campaign), else its metric."""
    if user_id:
        return user_id
    try:
        fields = json.loads(payload or "{}")
        return str(fields.get("subject") or fields.get("metric") or "")
    except (ValueError, AttributeError):
        return ""


@dataclass
class TriggerOutcome:
    """What one run did for one trigger."""

    candidates: int = 0
    already_recorded: int = 0
    cooling_down: int = 0
    outside_propensity: int = 0
    """Candidates left out by the trigger's min_propensity / max_propensity."""
    fired: list[dict] = field(default_factory=list)
    note: str | None = None


@dataclass
class FireResult:
    definitions: Definitions
    refused: str | None
    outcomes: dict[str, TriggerOutcome]
    recorded: int
    events_written: int
    recovered: int
    dry_run: bool

    def summary(self) -> str:
        verb = "would fire" if self.dry_run else "fired"
        total = sum(len(o.fired) for o in self.outcomes.values())
        text = f"{verb} {total} new firing(s) of {len(self.outcomes)} trigger(s)"
        if self.recovered:
            text += f"; wrote back {self.recovered} firing(s) an interrupted run had recorded"
        return text


def fire_lock(settings: Settings) -> AbstractContextManager[bool]:
    """One fire run at a time per home (the Dagster asset and the CLI may race)."""
    return exclusive_lock(settings.triggers_dir / "fire.lock")


def fire(
    settings: Settings,
    dry_run: bool = False,
    now: datetime | None = None,
    models: set[str] | None = None,
    source: Path | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> FireResult:
    """The fire workflow (see the module docstring). ``dry_run`` computes what would fire
    and writes nothing. ``models``: only the triggers whose candidates these dbt models hold (a
    freshness tier's);
    ``source``: read candidates from this DuckDB file instead of the replica (the pipeline
    worker fires from the warehouse it has just built); ``connection``: a connection to the
    Delta-ready DuckDB database ``source`` already open in this process (the worker's
    warehouse), which the candidates are then read through."""
    with fire_lock(settings):
        installed = install(settings)
        ensure_trigger_tables(settings)
        configure_firing_tables(settings)
        # the process's Delta-ready database, one cursor throughout
        conn = memory_cursor() if connection is None else connection.cursor()
        try:
            return _fire(
                settings, installed, conn, dry_run, now, models, source, connection is not None
            )
        finally:
            conn.close()


def _fire(settings, installed, conn, dry_run, now, models, source, opened) -> FireResult:
    recovered = 0 if dry_run else write_back_pending(settings, conn)
    fired_at = (now or datetime.now(UTC)).astimezone(UTC)
    triggers = [t for t in installed.definitions.triggers if models is None or t.model in models]
    outcomes = {t.name: TriggerOutcome() for t in triggers}
    rows: list[dict] = []
    replica = source or settings.replica_path
    if triggers and replica.exists():
        # The candidates are read from the default database: ``replica`` attached, unless
        # ``conn`` is a connection to it already (``opened``).
        if not opened:
            conn.execute(f"attach '{replica}' as wh (read_only)")
            conn.execute("use wh")
        try:
            candidates = {trigger.name: _candidates(conn, trigger) for trigger in triggers}
            recorded = _recorded(conn, settings, candidates)
            for trigger in triggers:
                rows += _new_firings(
                    conn,
                    trigger,
                    candidates[trigger.name],
                    recorded,
                    outcomes[trigger.name],
                    fired_at,
                )
        finally:
            if not opened:
                conn.execute("use memory")
                conn.execute("detach wh")
    elif triggers:
        for outcome in outcomes.values():
            outcome.note = "no marts yet: run `lakepulse build` first"
    if dry_run or not rows:
        return FireResult(
            installed.definitions, installed.error, outcomes, 0, 0, recovered, dry_run
        )
    recorded_count = record_firings(settings, rows)
    _fault_pause("LAKEPULSE_FAULT_PAUSE_AFTER_RECORD")
    written = write_back_pending(settings, conn)
    return FireResult(
        installed.definitions,
        installed.error,
        outcomes,
        recorded_count,
        written,
        recovered,
        dry_run,
    )


def _fault_pause(variable: str) -> None:
    """Fault injection for crash tests: stop here for ``$variable`` seconds, so a test can
    SIGKILL the process at exactly this point. Unset in production."""
    seconds = os.environ.get(variable)
    if seconds:
        import time

        print(f"paused: {variable}", flush=True)
        time.sleep(float(seconds))


def _recorded(conn, settings: Settings, candidates: dict[str, list[tuple]]) -> dict:
    """The recorded firings that bear on ``candidates`` (per trigger, its :func:`_candidates`):
    their ids, and their occurrence times per (trigger, tenant, subject). Only the firings of
    these triggers, and of a user's only those about a candidate's user (a tenant-level
    firing's subject is in its payload: those are few, and all read). Reading every firing
    ever recorded cost each cycle ~1 s after a few hours of firings, and grew with them."""
    path = settings.trigger_firings_path
    users = [
        (trigger, tenant_id, user_id)
        for trigger, rows in candidates.items()
        for tenant_id, user_id, *_ in rows
        if user_id
    ]
    conn.register(
        "candidate_users",
        pa.table(
            [list(column) for column in zip(*users, strict=True)] if users else [[], [], []],
            schema=pa.schema(
                [("trigger", pa.string()), ("tenant_id", pa.string()), ("user_id", pa.string())]
            ),
        ),
    )
    found: dict[tuple[str, str, str], list[datetime]] = {}
    ids: set[str] = set()
    try:
        recorded = conn.execute(
            f"select firing_id, trigger, tenant_id, user_id, payload, occurred_at "
            f"from delta_scan('{path}') as recorded "
            f"where recorded.trigger in (select unnest(?)) and ("
            f"coalesce(recorded.user_id, '') = '' or exists (select 1 from candidate_users as c "
            f"where c.trigger = recorded.trigger and c.tenant_id = recorded.tenant_id "
            f"and c.user_id = recorded.user_id))",
            [list(candidates)],
        ).fetchall()
    finally:
        conn.unregister("candidate_users")
    for fid, trigger, tenant, user_id, payload, occurred_at in recorded:
        ids.add(fid)
        found.setdefault((trigger, tenant, subject_of(user_id, payload)), []).append(occurred_at)
    return {"ids": ids, "times": found}


def _candidates(conn, trigger: Trigger) -> list[tuple]:
    columns = {
        row[0]
        for row in conn.execute(
            "select column_name from information_schema.columns "
            "where table_catalog = current_database() and table_schema = 'triggers' and table_name = ?",
            [trigger.model],
        ).fetchall()
    }
    if not columns:
        return []
    where = "where trigger = ?" if "trigger" in columns else "where ? is not null"
    return conn.execute(
        f"select tenant_id, user_id, occurrence_key, occurred_at, payload "
        f'from triggers."{trigger.model}" {where} order by occurred_at, occurrence_key',
        [trigger.name],
    ).fetchall()


def _new_firings(
    conn,
    trigger: Trigger,
    candidates: list[tuple],
    recorded: dict,
    outcome: TriggerOutcome,
    fired_at: datetime,
) -> list[dict]:
    if not candidates and not _model_exists(conn, trigger):
        outcome.note = f"model {trigger.model} is not built yet: run `lakepulse build`"
    cooldown = timedelta(hours=trigger.cooldown_hours)
    scores = _propensities(conn, trigger)
    rows = []
    for tenant_id, user_id, occurrence_key, occurred_at, payload in candidates:
        if not trigger.applies_to(tenant_id):
            continue
        outcome.candidates += 1
        if scores is not None and not _within(trigger, scores.get((tenant_id, user_id))):
            outcome.outside_propensity += 1
            continue
        subject = subject_of(user_id, payload)
        fid = firing_id(trigger.name, tenant_id, subject, str(occurrence_key))
        if fid in recorded["ids"]:
            outcome.already_recorded += 1
            continue
        times = recorded["times"].setdefault((trigger.name, tenant_id, subject), [])
        occurred = occurred_at.astimezone(UTC)
        if cooldown and any(abs(occurred - t.astimezone(UTC)) < cooldown for t in times):
            outcome.cooling_down += 1
            continue
        times.append(occurred)
        recorded["ids"].add(fid)
        row = {
            "firing_id": fid,
            "tenant_id": tenant_id,
            "trigger": trigger.name,
            "kind": trigger.kind,
            "user_id": user_id,
            "fired_at": fired_at,
            "occurred_at": occurred,
            "arm": assign_arm(trigger.name, tenant_id, user_id, trigger.holdout),
            "payload": payload,
            "destinations": json.dumps(list(trigger.destinations)),
        }
        outcome.fired.append(row)
        rows.append(row)
    return rows


def _propensities(conn, trigger: Trigger) -> dict[tuple[str, str], float] | None:
    """Each user's latest purchase propensity (mart_visitor_propensity in the replica), when
    the trigger filters on it; ``None`` when it does not."""
    if trigger.min_propensity is None and trigger.max_propensity is None:
        return None
    exists = conn.execute(
        "select count(*) from information_schema.tables where table_catalog = current_database() "
        "and table_schema = 'marts' and table_name = 'mart_visitor_propensity'"
    ).fetchone()[0]
    if not exists:
        return {}
    return {
        (tenant_id, user_key): propensity
        for tenant_id, user_key, propensity in conn.execute(
            "select tenant_id, user_key, arg_max(propensity, session_start_at) "
            "from marts.mart_visitor_propensity group by tenant_id, user_key"
        ).fetchall()
    }


def _within(trigger: Trigger, propensity: float | None) -> bool:
    if propensity is None:
        return False
    low = trigger.min_propensity if trigger.min_propensity is not None else 0.0
    high = trigger.max_propensity if trigger.max_propensity is not None else 1.0
    return low <= propensity <= high


def _model_exists(conn, trigger: Trigger) -> bool:
    return bool(
        conn.execute(
            "select count(*) from information_schema.tables "
            "where table_catalog = current_database() and table_schema = 'triggers' and table_name = ?",
            [trigger.model],
        ).fetchone()[0]
    )


def record_firings(settings: Settings, rows: list[dict]) -> int:
    """Insert the firings whose id the table does not hold yet (one atomic MERGE); returns
    how many were inserted."""
    from deltalake import DeltaTable

    table = pa.Table.from_pylist(rows, schema=FIRINGS_SCHEMA)
    metrics = (
        DeltaTable(str(settings.trigger_firings_path))
        .merge(table, "target.firing_id = source.firing_id", "source", "target")
        .when_not_matched_insert_all()
        .execute()
    )
    return int(metrics.get("num_target_rows_inserted", len(rows)))


def write_back_pending(settings: Settings, conn=None) -> int:
    """Write the `Trigger Fired` event of every recorded firing not yet marked written, then
    mark them. Returns how many were written. ``conn``: a DuckDB connection with the Delta
    extension to read with (else one is opened)."""
    from deltalake import write_deltalake

    own = conn is None
    conn = connect() if own else conn
    try:
        pending = conn.execute(
            f"select f.* from delta_scan('{settings.trigger_firings_path}') as f "
            f"anti join delta_scan('{firings_written_path(settings)}') as w "
            "on f.firing_id = w.firing_id order by f.tenant_id, f.fired_at, f.firing_id"
        ).fetch_arrow_table()
    finally:
        if own:
            conn.close()
    if pending.num_rows == 0:
        return 0
    rows = pending.to_pylist()
    write_events(settings, rows)
    written_at = datetime.now(UTC)
    write_deltalake(
        str(firings_written_path(settings)),
        pa.Table.from_pylist(
            [{"firing_id": r["firing_id"], "written_at": written_at} for r in rows],
            schema=WRITTEN_SCHEMA,
        ),
        mode="append",
    )
    return len(rows)


def trigger_event(firing: dict) -> dict:
    """The Segment `track` message a firing becomes: messageId = firing_id, at fired_at."""
    payload = json.loads(firing.get("payload") or "{}")
    fired_at = firing["fired_at"].astimezone(UTC).isoformat()
    message = {
        "type": "track",
        "event": EVENT_NAME,
        "messageId": firing["firing_id"],
        "timestamp": fired_at,
        "sentAt": fired_at,
        "properties": {
            "trigger": firing["trigger"],
            "kind": firing["kind"],
            "arm": firing["arm"],
            "firing_id": firing["firing_id"],
            "occurred_at": firing["occurred_at"].astimezone(UTC).isoformat(),
        },
        "context": {"library": LIBRARY},
    }
    user = firing.get("user_id")
    if user is None:
        message["anonymousId"] = f"lakepulse-trigger:{firing['trigger']}"
    elif payload.get("user_id") == user:
        message["userId"] = user
    else:
        message["anonymousId"] = user  # an anonymous device's key
    return message


def write_events(settings: Settings, firings: list[dict]) -> None:
    """Append the firings' events to the landing log, one durable file per tenant, through
    the collector's own way in (``ingestion.intake``: the same contract, privacy rules and
    landing log), so bronze gets the same row shape."""
    write_back(
        settings,
        [
            (firing["tenant_id"], trigger_event(firing), firing["fired_at"].astimezone(UTC))
            for firing in firings
        ],
    )


def firing_counts(settings: Settings, now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Per trigger: firings recorded in the last hour, the last day and ever."""
    ensure_trigger_tables(settings)
    now = now or datetime.now(UTC)
    conn = connect()
    try:
        rows = conn.execute(
            "select trigger, count(*) filter (where fired_at >= ?), "
            "count(*) filter (where fired_at >= ?), count(*) "
            f"from delta_scan('{settings.trigger_firings_path}') group by trigger",
            [now - timedelta(hours=1), now - timedelta(days=1)],
        ).fetchall()
    finally:
        conn.close()
    return {t: {"last_hour": h, "last_day": d, "total": n} for t, h, d, n in rows}


def erase_firings(settings: Settings, tenant_id: str, ids: set[str]) -> int:
    """Erasure: delete the firings of one user's identities (the user id and their devices),
    and their outbox marks, leaving no old file version behind. Their `Trigger Fired` events
    go with the user's other events (landing log and bronze). Returns the firings deleted."""
    from deltalake import DeltaTable

    from ingestion.erasure import purge_old_versions

    ensure_trigger_tables(settings)

    def quoted(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    with fire_lock(settings):
        path = settings.trigger_firings_path
        conn = connect()
        try:
            doomed = [
                row[0]
                for row in conn.execute(
                    f"select firing_id from delta_scan('{path}') "
                    "where tenant_id = ? and list_contains(?, user_id)",
                    [tenant_id, sorted(ids)],
                ).fetchall()
            ]
        finally:
            conn.close()
        if not doomed:
            return 0
        listed = ", ".join(quoted(fid) for fid in doomed)
        for table in (path, firings_written_path(settings)):
            DeltaTable(str(table)).delete(f"firing_id in ({listed})")
            purge_old_versions(table)
        return len(doomed)
