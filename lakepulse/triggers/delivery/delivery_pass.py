"""One delivery pass (:func:`deliver_pass`), run by ``lakepulse triggers deliver`` and by the
pipeline worker's delivery thread:

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
3. outcomes are appended to the state table as they arrive (every ``FLUSH_ROWS`` rows or
   ``FLUSH_SECONDS``), in one writer.

Retry schedule: after a retryable failure (5xx, 408, 429, timeout, refused connection) the
next attempt waits ``30 s x 2^(attempt-1)``, capped at 4 h, times a random factor in
[0.8, 1.2] (jitter, so receivers coming back are not hit by every deliverer in step): 30 s,
1 min, 2 min, 4 min, ... 2 h 8 min. After ``max_attempts`` (default 10, about 4 h 15 min in
all) the delivery is a dead letter, as is any other 4xx at once.
"""

from __future__ import annotations

import os
import queue
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lakepulse.core.settings import Settings, triggers_file
from lakepulse.triggers import transport
from lakepulse.triggers.delivery import state
from lakepulse.triggers.delivery.renderers import attempt
from lakepulse.triggers.destinations import Destination, load_destinations
from lakepulse.warehouse.trigger_tables import configure_deliveries_table, ensure_trigger_tables

BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=4)
JITTER = (0.8, 1.2)
BREAKER_FAILURES = 3
FLUSH_ROWS = 500
FLUSH_SECONDS = 1.0
PER_DESTINATION_LIMIT = 1000


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
    passes do not pile up."""
    started = time.monotonic()
    env = dict(os.environ if env is None else env)
    rng = rng or random.Random()
    result = PassResult()
    with state.pass_lock(settings) as locked:
        if not locked:
            return PassResult(busy=True)
        ensure_trigger_tables(settings)
        configure_deliveries_table(settings)
        clock = now or datetime.now(UTC)
        versions = state.table_versions(settings)
        quiet = state.QUIET.pop(settings.home, None)
        if quiet and quiet[0] == versions and (quiet[1] is None or clock < quiet[1]):
            state.QUIET[settings.home] = quiet
            result.seconds = time.monotonic() - started
            return result
        due = state.due_deliveries(settings, clock, per_destination_limit)
        result.due = len(due)
        if due:
            destinations = load_destinations(triggers_path or triggers_file())
            _run(settings, due, destinations, env, clock, deadline_seconds, rng, result, on_outcome)
            state.compact_every(settings, versions[1], state.COMPACT_EVERY_COMMITS)
        else:
            state.QUIET[settings.home] = (versions, state.next_retry_at(settings))
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
    signals = state.buyer_signals(
        settings, {(r["tenant_id"], r["user_id"]) for r in due if r["user_id"]}
    )
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


def _write_outcomes(
    settings: Settings,
    outcomes: queue.Queue,
    producers: int,
    result: PassResult,
    on_outcome: Callable[[dict], None] | None,
) -> None:
    """The single writer: appends outcomes in batches while the destinations keep working."""
    pending: list[dict] = []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        if pending:
            state.append_rows(settings, pending)
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
