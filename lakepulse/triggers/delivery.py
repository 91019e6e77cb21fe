"""Delivering trigger firings: at least once per treatment firing and destination, with
retries on a schedule and dead letters, resumable after any crash.

State. ``lake/triggers/deliveries`` (Delta, append-only) holds one row per state change of a
(firing, destination): every attempt's outcome, and every re-queue. Its rows are the history;
the current state of a delivery is its latest row. A firing with no row yet is pending.

One pass (:func:`deliver_pass`, run by ``lakepulse triggers deliver`` and by a Dagster sensor
every 30 s):

1. under a file lock (one pass at a time per data directory), select what is due: treatment
   firings x their destinations with no row, or whose latest row is ``pending``/``retrying``
   with ``next_attempt_at`` passed; at most ``per_destination_limit`` per destination, so
   memory is bounded however large a receiver's backlog grows. Tenant-level firings (an
   anomaly or threshold alert, no user) come first, then the oldest: an alert never waits
   behind a backlog of per-customer messages;
2. each destination works through its share in its own thread with at most ``concurrency``
   requests in flight, so a slow or dead receiver delays only itself. After
   ``BREAKER_FAILURES`` consecutive transport failures (timeouts, refused connections) a
   destination stops for this pass: its remaining firings wait for the next one, unattempted;
3. outcomes are appended to the Delta table as they arrive (every ``FLUSH_ROWS`` rows or
   ``FLUSH_SECONDS``), in one writer.

Crash safety: a row is written only after its attempt, so a deliverer killed mid-batch
(SIGKILL included) has lost nothing: the firings it had sent but not recorded are sent again
by the next pass, with the same ``Idempotency-Key`` (and the same e-mail ``Message-ID``), which
is what makes at-least-once harmless for a receiver that deduplicates.

Retry schedule: after a retryable failure (5xx, 408, 429, timeout, refused connection) the
next attempt waits ``30 s x 2^(attempt-1)``, capped at 4 h, times a random factor in
[0.8, 1.2] (jitter, so receivers coming back are not hit by every deliverer in step): 30 s,
1 min, 2 min, 4 min, ... 2 h 8 min. After ``max_attempts`` (default 10, about 4 h 15 min in
all) the delivery is a dead letter, as is any other 4xx at once; ``lakepulse triggers retry``
puts dead letters back on the schedule from its start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import queue
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakepulse.core.locks import exclusive_lock
from lakepulse.core.settings import DBT_PROJECT_DIR, Settings
from lakepulse.triggers import transport
from lakepulse.triggers.destinations import (
    Destination,
    DestinationError,
    UnresolvedSecret,
    load_destinations,
)
from lakepulse.warehouse.trigger_tables import (
    DELIVERIES_SCHEMA,
    FIRINGS_SCHEMA,
    ensure_trigger_tables,
)

BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=4)
JITTER = (0.8, 1.2)
BREAKER_FAILURES = 3
FLUSH_ROWS = 500
FLUSH_SECONDS = 1.0
PER_DESTINATION_LIMIT = 1000
COMPACT_EVERY_COMMITS = 100
USER_AGENT = "lakepulse-delivery/1"


def triggers_file() -> Path:
    """``LAKEPULSE_TRIGGERS_FILE``, or ``dbt_project/triggers.yml``."""
    return Path(os.environ.get("LAKEPULSE_TRIGGERS_FILE") or DBT_PROJECT_DIR / "triggers.yml")


def retry_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Wait before the next attempt after ``attempts`` failed ones (see the module docstring)."""
    base = min(BASE_DELAY * 2 ** (attempts - 1), MAX_DELAY)
    return base * (rng or random).uniform(*JITTER)


@dataclass
class PassResult:
    """What one pass did; ``busy`` means another pass held the lock and this one did nothing."""

    due: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    deferred: int = 0
    paused: list[str] = field(default_factory=list)
    busy: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        if self.busy:
            return "another delivery pass is running; nothing done"
        text = (
            f"{self.due} due: {self.delivered} delivered, {self.retrying} to retry, "
            f"{self.dead} dead letters, {self.deferred} deferred to the next pass"
        )
        if self.paused:
            text += f" (paused after repeated failures: {', '.join(self.paused)})"
        return f"{text} in {self.seconds:.2f} s"


# Tables --------------------------------------------------------------------------------------
def _pass_lock(settings: Settings) -> AbstractContextManager[bool]:
    """One delivery pass (or re-queue) at a time per data directory; never waits."""
    return exclusive_lock(settings.trigger_delivery_lock_path, wait=False)


def _latest_sql(deliveries: Path) -> str:
    return (
        f"select * from delta_scan('{deliveries}') qualify row_number() over "
        "(partition by firing_id, destination order by recorded_at desc, attempts desc) = 1"
    )


_DUCK: Any = None
"""One in-memory DuckDB per process: loading the Delta extension costs about a second, which a
sensor's pass every 30 s should pay once, not every time."""

_QUIET: dict[Path, tuple[tuple[int, int], datetime | None]] = {}
"""Per data directory, after a pass that found nothing due: the two tables' versions and when
the earliest retry falls due. While neither table has changed and that time has not come, the
next pass knows there is nothing to do without scanning."""


def _cursor():
    global _DUCK
    if _DUCK is None:
        from lakepulse.core.duck import connect

        _DUCK = connect()
    return _DUCK.cursor()


def _table_versions(settings: Settings) -> tuple[int, int]:
    from deltalake import DeltaTable

    return (
        DeltaTable(str(settings.trigger_firings_path)).version(),
        DeltaTable(str(settings.trigger_deliveries_path)).version(),
    )


def _next_retry_at(settings: Settings) -> datetime | None:
    conn = _cursor()
    try:
        return conn.execute(
            f"select min(next_attempt_at) from ({_latest_sql(settings.trigger_deliveries_path)}) "
            "where status = 'retrying'"
        ).fetchone()[0]
    finally:
        conn.close()


def _due(settings: Settings, now: datetime, limit: int) -> list[dict]:
    conn = _cursor()
    try:
        return (
            conn.execute(
                f"""
                with latest as ({_latest_sql(settings.trigger_deliveries_path)}),
                targets as (
                    select *, unnest(from_json(destinations, '["VARCHAR"]')) as destination
                    from delta_scan('{settings.trigger_firings_path}')
                    where arm = 'treatment' and json_valid(destinations)
                )
                select
                    targets.firing_id, targets.destination, targets.tenant_id, targets.trigger,
                    targets.kind, targets.user_id, targets.fired_at, targets.occurred_at,
                    targets.payload, coalesce(latest.attempts, 0) as attempts
                from targets
                left join latest using (firing_id, destination)
                where latest.status is null
                    or (latest.status in ('pending', 'retrying')
                        and coalesce(latest.next_attempt_at <= $now, true))
                qualify row_number() over (
                    partition by targets.destination
                    order by targets.user_id is not null, targets.fired_at, targets.firing_id
                ) <= $limit
                order by
                    targets.destination, targets.user_id is not null, targets.fired_at,
                    targets.firing_id
                """,
                {"now": now, "limit": limit},
            )
            .fetch_arrow_table()
            .to_pylist()
        )
    finally:
        conn.close()


def _signals(settings: Settings, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Each (tenant, user)'s row of ``mart_buyer_signals`` in the replica, when it exists."""
    from lakepulse.core.duck import connect

    replica = settings.replica_path
    if not keys or not replica.exists():
        return {}
    conn = connect(replica, read_only=True)
    try:
        exists = conn.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'marts' and table_name = 'mart_buyer_signals'"
        ).fetchone()[0]
        if not exists:
            return {}
        wanted = pa.table(
            {"t": [k[0] for k in keys], "u": [k[1] for k in keys]},
        )
        conn.register("wanted", wanted)
        rows = (
            conn.execute(
                "select s.* from marts.mart_buyer_signals s "
                "semi join wanted on s.tenant_id = wanted.t and s.user_id = wanted.u"
            )
            .fetch_arrow_table()
            .to_pylist()
        )
    finally:
        conn.close()
    out = {}
    for row in rows:
        key = (row.pop("tenant_id"), row.pop("user_id"))
        out[key] = json.loads(json.dumps(row, default=_json_default))
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Messages ------------------------------------------------------------------------------------
def webhook_body(firing: Mapping[str, Any], signals: dict | None) -> bytes:
    """The documented JSON body, serialised once: the signature covers these exact bytes."""
    document = {
        "firing_id": firing["firing_id"],
        "trigger": firing["trigger"],
        "kind": firing["kind"],
        "tenant_id": firing["tenant_id"],
        "user_id": firing["user_id"],
        "fired_at": _iso(firing["fired_at"]),
        "occurred_at": _iso(firing.get("occurred_at")),
        "payload": json.loads(firing["payload"]) if firing.get("payload") else {},
        "signals": signals,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def sign(body: bytes, secret: str) -> str:
    """``sha256=<hex HMAC-SHA256 of the raw body>``: the X-Lakepulse-Signature header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_body(firing: Mapping[str, Any]) -> bytes:
    """Slack's incoming-webhook shape: ``text`` (the notification) and ``blocks``."""
    payload = json.loads(firing["payload"]) if firing.get("payload") else {}
    headline = (
        f"*{firing['trigger']}* fired for user `{firing['user_id'] or '-'}` "
        f"of tenant `{firing['tenant_id']}`"
    )
    details = ", ".join(f"{k}: {v}" for k, v in sorted(payload.items()))[:2000]
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": headline}}]
    if details:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": details}]})
    return json.dumps(
        {"text": headline.replace("*", "").replace("`", ""), "blocks": blocks}
    ).encode()


def email_message(
    destination: Destination, firing: Mapping[str, Any], signals: dict | None, env: Mapping
) -> EmailMessage:
    """The rendered e-mail. Templates see the webhook body's fields (``payload`` and
    ``signals`` as mappings). The Message-ID derives from the firing, so a resent copy is
    recognisably the same message."""
    context = json.loads(webhook_body(firing, signals))
    recipients = destination.resolve("to", env)
    message = EmailMessage()
    message["From"] = destination.resolve("from", env)
    message["To"] = ", ".join(recipients) if isinstance(recipients, list) else recipients
    subject = destination.template("subject_template").render(context)
    message["Subject"] = " ".join(subject.split())
    message["Date"] = formatdate(usegmt=True)
    digest = hashlib.sha256(f"{firing['firing_id']}|{destination.name}".encode()).hexdigest()
    message["Message-ID"] = f"<{digest[:32]}@lakepulse>"
    message["X-Lakepulse-Firing-Id"] = firing["firing_id"]
    message.set_content(destination.template("body_template").render(context))
    return message


def attempt(
    destination: Destination, firing: Mapping[str, Any], signals: dict | None, env: Mapping
) -> transport.Outcome:
    """One delivery attempt of one firing to one destination."""
    try:
        if destination.type == "email":
            return transport.send_mail(
                email_message(destination, firing, signals, env),
                host=destination.resolve("host", env),
                port=int(destination.get("port", 587)),
                starttls=bool(destination.get("starttls", True)),
                allow_plain=bool(destination.get("allow_plain", False)),
                username=destination.resolve("username", env),
                password=destination.resolve("password", env),
                timeout=destination.timeout_seconds,
            )
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if destination.type == "slack":
            body = slack_body(firing)
        else:
            body = webhook_body(firing, signals)
            headers["Idempotency-Key"] = firing["firing_id"]
            headers["X-Lakepulse-Signature"] = sign(body, destination.resolve("secret", env))
        return transport.post(
            destination.resolve("url", env),
            body,
            headers,
            destination.timeout_seconds,
            destination.allow_private,
        )
    except UnresolvedSecret as err:
        return transport.Outcome(False, retryable=True, error=str(err))
    except Exception as err:  # a template error, say: a dead letter that names it
        return transport.Outcome(False, retryable=False, error=f"{type(err).__name__}: {err}"[:300])


# The pass ------------------------------------------------------------------------------------
def deliver_pass(
    settings: Settings,
    *,
    triggers_path: Path | None = None,
    now: datetime | None = None,
    env: Mapping[str, str] | None = None,
    per_destination_limit: int = PER_DESTINATION_LIMIT,
    deadline_seconds: float = 25.0,
    rng: random.Random | None = None,
    on_outcome: Callable[[dict], None] | None = None,
) -> PassResult:
    """Deliver what is due now (see the module docstring). ``now`` is the clock the schedule is
    read against; a firing not started within ``deadline_seconds`` waits for the next pass, so
    a 30 s sensor's passes do not pile up."""
    started = time.monotonic()
    env = dict(os.environ if env is None else env)
    rng = rng or random.Random()
    result = PassResult()
    with _pass_lock(settings) as locked:
        if not locked:
            return PassResult(busy=True)
        ensure_trigger_tables(settings)
        clock = now or datetime.now(UTC)
        versions = _table_versions(settings)
        quiet = _QUIET.pop(settings.home, None)
        if quiet and quiet[0] == versions and (quiet[1] is None or clock < quiet[1]):
            _QUIET[settings.home] = quiet
            result.seconds = time.monotonic() - started
            return result
        due = _due(settings, clock, per_destination_limit)
        result.due = len(due)
        if due:
            destinations = load_destinations(triggers_path or triggers_file())
            _run(settings, due, destinations, env, clock, deadline_seconds, rng, result, on_outcome)
            _compact_every(settings, versions[1], COMPACT_EVERY_COMMITS)
        else:
            _QUIET[settings.home] = (versions, _next_retry_at(settings))
    result.seconds = time.monotonic() - started
    return result


def _run(
    settings: Settings,
    due: list[dict],
    destinations: dict[str, Destination],
    env: dict[str, str],
    clock: datetime,
    deadline_seconds: float,
    rng: random.Random,
    result: PassResult,
    on_outcome: Callable[[dict], None] | None,
) -> None:
    signals = _signals(settings, {(r["tenant_id"], r["user_id"]) for r in due if r["user_id"]})
    by_destination: dict[str, list[dict]] = defaultdict(list)
    for row in due:
        by_destination[row["destination"]].append(row)
    outcomes: queue.Queue[dict | None] = queue.Queue(maxsize=4 * FLUSH_ROWS)
    deadline = time.monotonic() + deadline_seconds

    def work(name: str, rows: list[dict]) -> None:
        try:
            _work_destination(
                destinations.get(name), name, rows, signals, env, clock, deadline, rng, outcomes
            )
        finally:
            outcomes.put(None)

    threads = [
        threading.Thread(target=work, args=(name, rows), name=f"deliver-{name}", daemon=True)
        for name, rows in by_destination.items()
    ]
    for thread in threads:
        thread.start()
    _write_outcomes(settings, outcomes, len(threads), result, on_outcome)
    for thread in threads:
        thread.join()


def _work_destination(
    destination: Destination | None,
    name: str,
    rows: list[dict],
    signals: dict,
    env: dict[str, str],
    clock: datetime,
    deadline: float,
    rng: random.Random,
    outcomes: queue.Queue,
) -> None:
    if destination is None:
        for row in rows:
            outcome = transport.Outcome(
                False, error=f"destination {name!r} is not defined in the triggers file"
            )
            outcomes.put(_outcome_row(row, outcome, clock, 1, rng))
        return
    failures = 0
    lock = threading.Lock()

    def one(row: dict) -> None:
        nonlocal failures
        with lock:
            paused = failures >= BREAKER_FAILURES
        if paused or time.monotonic() > deadline:
            outcomes.put({"deferred": name, "paused": paused})
            return
        outcome = attempt(destination, row, signals.get((row["tenant_id"], row["user_id"])), env)
        with lock:
            transport_failure = outcome.retryable and outcome.status_code is None
            failures = failures + 1 if transport_failure else 0
        outcomes.put(_outcome_row(row, outcome, clock, destination.max_attempts, rng))

    with ThreadPoolExecutor(destination.concurrency, thread_name_prefix=f"deliver-{name}") as pool:
        list(pool.map(one, rows))


def _outcome_row(
    row: dict, outcome: transport.Outcome, clock: datetime, max_attempts: int, rng: random.Random
) -> dict:
    attempts = int(row["attempts"]) + 1
    now = datetime.now(UTC)  # the history's order; ``clock`` only places the next attempt
    if outcome.delivered:
        status, next_at = "delivered", None
    elif outcome.retryable and attempts < max_attempts:
        status, next_at = "retrying", clock + retry_delay(attempts, rng)
    else:
        status, next_at = "dead", None
    return {
        "firing_id": row["firing_id"],
        "destination": row["destination"],
        "tenant_id": row["tenant_id"],
        "trigger": row["trigger"],
        "status": status,
        "attempts": attempts,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
        "next_attempt_at": next_at,
        "delivered_at": now if outcome.delivered else None,
        "recorded_at": now,
    }


def _compact_every(settings: Settings, version_before: int, commits: int) -> None:
    """Every ``commits`` commits, rewrite the state table's small files into few and write a
    checkpoint: each flush is a commit, and the due query reads them all. The rows (the
    history) stay; only their files change."""
    from deltalake import DeltaTable

    table = DeltaTable(str(settings.trigger_deliveries_path))
    if table.version() // commits != version_before // commits:
        table.optimize.compact()
        table.create_checkpoint()


def _write_outcomes(
    settings: Settings,
    outcomes: queue.Queue,
    producers: int,
    result: PassResult,
    on_outcome: Callable[[dict], None] | None,
) -> None:
    """The single writer: appends outcomes in batches while the destinations keep working."""
    from deltalake import write_deltalake

    pending: list[dict] = []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        if pending:
            table = pa.Table.from_pylist(pending, schema=DELIVERIES_SCHEMA)
            write_deltalake(str(settings.trigger_deliveries_path), table, mode="append")
            pending.clear()
        last_flush = time.monotonic()

    finished = 0
    while finished < producers:
        try:
            item = outcomes.get(timeout=FLUSH_SECONDS)
        except queue.Empty:
            flush()
            continue
        if item is None:
            finished += 1
        elif "deferred" in item:
            result.deferred += 1
            if item["paused"] and item["deferred"] not in result.paused:
                result.paused.append(item["deferred"])
        else:
            pending.append(item)
            setattr(result, item["status"], getattr(result, item["status"]) + 1)
            if on_outcome:
                on_outcome(item)
        if len(pending) >= FLUSH_ROWS or time.monotonic() - last_flush >= FLUSH_SECONDS:
            flush()
    flush()


# Dead letters --------------------------------------------------------------------------------
def requeue_dead(
    settings: Settings, trigger: str | None = None, destination: str | None = None
) -> int | None:
    """Put dead letters (of one trigger, or one destination) back at the start of the retry
    schedule; returns how many, or None when a delivery pass holds the lock."""
    from deltalake import write_deltalake

    from lakepulse.core.duck import connect

    with _pass_lock(settings) as locked:
        if not locked:
            return None
        ensure_trigger_tables(settings)
        conn = connect()
        try:
            dead = (
                conn.execute(
                    f"select * from ({_latest_sql(settings.trigger_deliveries_path)}) "
                    "where status = 'dead' and ($trigger is null or trigger = $trigger) "
                    "and ($destination is null or destination = $destination)",
                    {"trigger": trigger, "destination": destination},
                )
                .fetch_arrow_table()
                .to_pylist()
            )
        finally:
            conn.close()
        now = datetime.now(UTC)
        for row in dead:
            row.update(status="pending", attempts=0, next_attempt_at=None, recorded_at=now)
        if dead:
            write_deltalake(
                str(settings.trigger_deliveries_path),
                pa.Table.from_pylist(dead, schema=DELIVERIES_SCHEMA),
                mode="append",
            )
        return len(dead)


__all__ = [
    "DELIVERIES_SCHEMA",
    "FIRINGS_SCHEMA",
    "DestinationError",
    "PassResult",
    "deliver_pass",
    "ensure_trigger_tables",
    "requeue_dead",
    "retry_delay",
    "sign",
    "webhook_body",
]
