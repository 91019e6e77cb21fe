"""The pipeline worker: one long-lived process that owns the warehouse and keeps every
freshness tier's promise (:mod:`lakepulse.warehouse.tiers`).

A run-per-minute design pays its fixed costs on every run: a new process importing Dagster,
dlt, dbt and great-expectations, dbt's start and parse, and every model rebuilt, a day's grain
included. The worker pays them once. It loops in short cycles, each under the pipeline lock
(``Settings.pipeline_lock_path``), so ``lakepulse build``, ``ingest``, ``publish``, erasure,
retention, replay and compaction take their turn between two cycles:

1. load the new landing files into bronze (dlt), then run the blocking bronze suite on them:
   a failing load builds nothing in this cycle, so it never reaches a published mart;
2. the live tier, when events came in: ``dbt build`` its models and their tests in this
   process (:class:`WarmDbt`, the manifest kept), publish the marts that changed from the
   warehouse itself, and fire its trigger kinds;
3. one step of a slower tier's turn (``session``, ``daily``, on their cadence): a wave of its
   build (:meth:`~lakepulse.warehouse.tiers.TierPlan.waves`), or its publish and firing (the
   daily tier's come with its last wave, after the great-expectations suites of the marts, and
   start the read replica's refresh). A slower
   tier's turn is spread over cycles, a step each, so the live tier never waits for more than
   one step of it: a session turn in one piece held the live marts back by its build and its
   publish together (~25 s at ten million events). A session turn due while a daily one is
   under way goes first (:meth:`PipelineWorker.comes_before`).

A new worker (and one whose step failed) takes each tier's first turn in one piece: it catches
every tier up in its first cycle. The catch-up runs under DuckDB's memory limit like every other
cycle; only when it fails is it retried without one (a backlog of a million events can need
more), so the worker's memory peak is a steady cycle's, not a backlog's.

Deliveries run beside the cycles, on a thread, so a slow webhook never holds a tier back. Bronze's
upkeep runs between two cycles, like the warehouse's checkpoint: every few minutes the worker
compacts the small files its loads wrote (:meth:`PipelineWorker._compact_if_due`), so no
compaction run of its own starts beside it, holds the loader's lock for a whole history's
rewrite, and loads the Dagster definitions again into another process.

Every step is one of the workflows the CLI runs alone, so a worker killed at any moment loses
and duplicates nothing: the loader, the incremental models, the publish and the firing are
each exactly-once on their own, and the next worker's first cycle builds every tier."""

from __future__ import annotations

import gc
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from ingestion.landing import LandingLog
from ingestion.pipeline import run_ingest
from lakepulse.core.duck import (
    WORKER_MEMORY_LIMIT,
    WORKER_THREADS,
    apply_resource_limits,
    checkpoint_deferring_vacuum,
    duckdb_threads,
    memory_limit,
    resource_limited,
)
from lakepulse.core.heartbeat import HEARTBEAT_EVERY_S, beat
from lakepulse.core.locks import exclusive_lock, lock_wanted
from lakepulse.core.settings import Settings
from lakepulse.operations.compaction import compact_and_vacuum
from lakepulse.operations.rebuild import migrate_changed_schemas, prepare_dbt
from lakepulse.triggers.delivery import deliver_pass
from lakepulse.triggers.firing import fire
from lakepulse.warehouse.dbt import WarmDbt, remember_build, tier_build_args
from lakepulse.warehouse.publish import publish
from lakepulse.warehouse.replica import refresh_replica
from lakepulse.warehouse.tiers import TIERS, Tier, TierPlan, tier_plan, tier_selector

IDLE_POLL_S = 0.5
"""How often an idle worker looks for new landing files."""

CYCLE_EVERY_S_ENV = "LAKEPULSE_WORKER_CYCLE_S"
CYCLE_EVERY_S = 6.0
"""A cycle that built something starts at most this often (:data:`CYCLE_EVERY_S_ENV` sets
another period; 0: back to back). Each cycle pays fixed costs (dbt's start, the loader's, the
checks'), so back-to-back cycles of a couple of seconds took more than a core at 1,000 events/s
whatever the traffic needed. A live tier promised in 15 s keeps it with a cycle every 6 s, a
period that also holds a cycle carrying a step of a slower tier's turn at 10 M events of
history (the live part and a session wave, ~2 + ~3.5 s): with 5 s those cycles ran past the
period, and the live tier's p95 grew with the history."""

WANTED_POLL_S = 0.2
"""How often a worker in its pause asks whether another process waits for the pipeline lock."""

HANDOVER_S = 5.0
"""How long a worker that let the lock go waits for the waiting process to take it."""

CHECKPOINT_WAL_BYTES = 64 * 2**20
"""After a cycle, the open warehouse is checkpointed once its write-ahead log holds this much:
there, not inside a build, where DuckDB would checkpoint at a commit (``checkpoint_threshold``
in ``profiles.yml`` holds those back)."""

CHECKPOINT_SLACK_S = 2.0
"""A checkpoint waits for a cycle that leaves this much of its period unused: at 10 M events one
can take a couple of seconds, which after a slower tier's step would delay the next live cycle."""

CHECKPOINT_FORCED_WAL_BYTES = 128 * 2**20
"""A log this long is checkpointed after the cycle whatever the cycle left (a replay after a
crash reads all of it). A checkpoint's time grows with its log: at ten million events, with its
cycles never leaving the slack, the worker of session 24 checkpointed only at 512 MB, 9 to 15 s
at once (vacuum included, now deferred: :func:`~lakepulse.core.duck.checkpoint_deferring_vacuum`)."""

COMPACT_EVERY_S_ENV = "LAKEPULSE_WORKER_COMPACT_S"
COMPACT_EVERY_S = 300.0
"""The worker compacts bronze's small files this often, between two cycles
(:data:`COMPACT_EVERY_S_ENV` sets another period): a load writes a file into today's partition
each cycle, ~50 between two compactions."""

WORKER_COMPACTED_FILE_BYTES = 16 * 2**20
"""The worker's compaction writes files of up to this size. OPTIMIZE rewrites every file smaller
than its target, so this bounds a compaction's work to what landed since the last one and one
file of at most this size; the hourly job's 128 MB target rewrote today's partition whole,
holding the loader's lock (15 s on a copied history in session 22)."""

COMPACT_RETAIN = timedelta(days=7)
"""File versions younger than this stay (time travel), as ``lakepulse compact``'s default."""

ERROR_BACKOFF_S = 5.0
"""Pause after a failed cycle (the next one retries what failed)."""

STARVED_AFTER = 1.5
"""A slower tier that has waited this many of its cadences takes the next turn before a faster
one (:meth:`PipelineWorker.next_turn`). The session tier is due again as soon as its turn ends
on a busy worker, so the daily tier's turns begin this often: at twice its cadence (600 s) its
own promise of 600 s could not hold (66 of 160 probes unseen in ``bench_freshness`` at a
million events); at 1.5 a turn begins within 450 s and ends a few session turns later."""

DELIVERY_EVERY_S = 10.0
"""How often a delivery pass starts when none is running (and after every firing)."""

DELIVERY_PASS_S = 5.0
"""A delivery pass starts no new message after this long, and the next pass selects again
with alerts first: a firing of this cycle never waits behind more than a few seconds of an
older backlog (a pass of the CLI, with nothing after it, allows 25 s)."""

REPORTS_QUEUED = 32
"""Cycle reports waiting for ``on_cycle`` (:meth:`PipelineWorker._report_beside`) before the
next cycle waits for a place: a report is handed over, not dropped."""

REPORTER_JOIN_S = 60.0
"""How long a stopping worker waits for ``on_cycle`` to take the reports still queued."""

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    """What one cycle did, written as a JSON line to ``Settings.worker_cycles_path``."""

    started_at: float
    """Wall-clock start (epoch seconds)."""
    landing: str | None
    """The newest landing file this cycle's load took in."""
    tiers: list[str] = field(default_factory=list)
    """The tiers this cycle built models of (a slower tier's wave counts)."""
    stages: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: ``load``, ``checks``, then ``dbt:<tier>``, ``publish:<tier>``, ..."""
    published: dict[str, int] = field(default_factory=dict)
    """Marts published, and their rows (or the keys a delta touched)."""
    fired: int = 0
    slowest: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    """Per dbt stage, its slowest nodes and their seconds: where a tier's time goes."""
    bronze_passed: bool | None = None
    """The blocking bronze suite's verdict on this cycle's load (None: nothing loaded)."""
    error: str | None = None
    memory_limit: str | None = None
    """DuckDB's memory limit in this cycle (None in a catch-up retried after it failed: see
    :meth:`PipelineWorker._cycle`)."""
    threads: int | None = None
    """DuckDB's threads in this cycle (None, DuckDB's default, in a catch-up)."""
    beside: dict[str, float] = field(default_factory=dict)
    """Seconds of work that ended before this cycle on a thread beside the cycles (``replica``),
    not part of its stages."""
    beside_error: str | None = None
    """Why that work failed, if it did (it is tried again at its next turn)."""

    @property
    def worked(self) -> bool:
        """Whether the cycle did anything but look (an idle cycle is not recorded)."""
        return bool(self.error) or bool(set(self.stages) - {"prepare"})

    def summary(self) -> str:
        """One line for a person: the tiers built, then each stage's seconds."""
        stages = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in self.stages.items())
        return f"built {'+'.join(self.tiers)}: {stages}" if self.tiers else stages


class PipelineWorker:
    """The loop of :mod:`lakepulse.operations.worker`, for one data directory."""

    def __init__(
        self,
        settings: Settings,
        tiers: tuple[Tier, ...] = TIERS,
        on_cycle: Callable[[CycleReport], None] | None = None,
    ) -> None:
        self.settings = settings
        self.tiers = tiers
        self.on_cycle = on_cycle
        self.cycle_every_s = float(os.environ.get(CYCLE_EVERY_S_ENV) or CYCLE_EVERY_S)
        self.compact_every_s = float(os.environ.get(COMPACT_EVERY_S_ENV) or COMPACT_EVERY_S)
        self.dbt = WarmDbt(settings, keep_open=True)
        self.landing = LandingLog(settings.landing_dir)
        self.loaded_through: str | None = None
        """The newest landing file loaded (None: load at the first cycle whatever there is)."""
        self.built_through: dict[str, str | None] = {}
        """Per tier: the landing file its last build had loaded; absent until it first built."""
        self.built_at: dict[str, float] = {}
        self.memory_limit = memory_limit() or WORKER_MEMORY_LIMIT
        """DuckDB's memory limit for the cycles (a catch-up's first attempt included)."""
        self.threads = duckdb_threads() or WORKER_THREADS
        """DuckDB's threads for the steady cycles (a catch-up keeps DuckDB's default)."""
        self.catch_up_failed = False
        """A catch-up failed under the limit: the next one runs without it, until one passes."""
        self.delivery: threading.Thread | None = None
        self.last_delivery = 0.0
        self.undelivered = False
        """A firing was recorded since the last delivery pass started."""
        self.bronze_failure: str | None = None
        """Why the latest load failed the bronze suite; no tier builds while it stands."""
        self.turn: tuple[str, Iterator[None]] | None = None
        """The slower tier whose turn is under way, and its remaining steps (one per cycle)."""
        self.set_aside: tuple[str, Iterator[None]] | None = None
        """A slower tier's turn a faster tier's came before, resumed when that one ends."""
        self.turn_may_wait = False
        """Whether the turn under way may be set aside: once it has taken a step since it began
        or resumed (:meth:`comes_before`)."""
        self.report = CycleReport(0.0, None)
        """The cycle under way's report, which a step of a turn started earlier writes to."""
        self.compacted_at = time.monotonic()
        """When bronze was last compacted (a new worker waits a period before its first)."""
        self.replica: threading.Thread | None = None
        """The read replica's refresh, beside the cycles (:meth:`_refresh_replica_beside`)."""
        self.replica_outcome: tuple[float, str | None] | None = None
        """The last refresh's seconds and error, for the next cycle's report."""
        self.reports: queue.Queue[CycleReport | None] | None = None
        """The reports on their way to ``on_cycle`` while :meth:`run` runs."""
        self._prepared = False
        self._frozen = False

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, until: float | None = None) -> None:
        """Cycle until ``stop`` is set (or the monotonic clock passes ``until``); the first
        cycle runs whatever the clock says. ``on_cycle`` gets every recorded cycle's report, in
        order, on a thread of its own (:meth:`_report_beside`), all of them before this
        returns."""
        beating = threading.Event()
        heart = threading.Thread(target=self._beat_until, args=(beating,), daemon=True)
        heart.start()
        reporter = None
        if self.on_cycle is not None:
            self.reports = queue.Queue(maxsize=REPORTS_QUEUED)
            reporter = threading.Thread(
                target=self._report_beside, args=(self.reports,), name="reporter", daemon=True
            )
            reporter.start()
        try:
            self._loop(stop, until)
        finally:
            # The delivery in flight ends first: a thread still inside DuckDB or Delta when
            # the interpreter exits can crash it.
            if self.delivery is not None:
                self.delivery.join()
            if reporter is not None:
                try:
                    self.reports.put(None, timeout=REPORTER_JOIN_S)
                    reporter.join(REPORTER_JOIN_S)
                except queue.Full:
                    log.warning("on_cycle took no report for %.0f s; stopping", REPORTER_JOIN_S)
                self.reports = None
            beating.set()
            heart.join()

    def _loop(self, stop: threading.Event, until: float | None) -> None:
        """At least one cycle, then until ``stop`` or ``until``. The pipeline lock is held
        through the cycles and the pauses between them, with the warehouse open (see
        :class:`~lakepulse.warehouse.dbt.WarmDbt`), until another process waits for the lock:
        the warehouse is then closed and the lock let go for the rest of the pause."""
        lock = self.settings.pipeline_lock_path
        while True:
            with exclusive_lock(lock):
                try:
                    while True:
                        started = time.monotonic()
                        report = self.cycle(keep_open=True)
                        self._freeze_long_lived()
                        self._deliver_in_background()
                        self._checkpoint_if_due(
                            slack_s=self.pause_after(report, time.monotonic() - started)
                        )
                        self._compact_if_due(
                            slack_s=self.pause_after(report, time.monotonic() - started)
                        )
                        if report.worked:
                            self._record(report)
                        if stop.is_set() or (until is not None and time.monotonic() >= until):
                            return
                        pause_until = time.monotonic() + self.pause_after(
                            report, time.monotonic() - started
                        )
                        wanted = lock_wanted(lock)
                        while not (wanted or stop.is_set()):
                            left = pause_until - time.monotonic()
                            if left <= 0:
                                break
                            stop.wait(min(WANTED_POLL_S, left))
                            wanted = lock_wanted(lock)
                        if stop.is_set():
                            return
                        if wanted:  # another process waits, even after a cycle past its pace
                            break
                finally:
                    self._close_warehouse()  # before the lock goes: a waiter opens it
            # The waiter takes the lock before this worker asks for it again (it then stops
            # wanting), so a worker with no pause left does not take it straight back.
            handover = time.monotonic() + HANDOVER_S
            while lock_wanted(lock) and time.monotonic() < handover and not stop.is_set():
                stop.wait(0.05)
            stop.wait(max(0.0, pause_until - time.monotonic()))

    def _freeze_long_lived(self) -> None:
        """After the first cycle, move every Python object alive into the collector's
        permanent generation (``gc.freeze``): dbt's parsed project, Dagster's definitions and
        the imported libraries, millions of objects made once. Python's full collections
        otherwise traverse them all, again and again: ~4 % of the worker's CPU at ten million
        events (``perf``). Objects made later are collected as before; a project parsed again
        after an edit leaves the previous manifest's cycles uncollected, once per edit."""
        if not self._frozen:
            gc.collect()
            gc.freeze()
            self._frozen = True

    def _checkpoint_if_due(self, slack_s: float) -> None:
        """Checkpoint the open warehouse after a cycle once its log is long
        (:data:`CHECKPOINT_WAL_BYTES`) and the cycle left room for it before the next one
        (:data:`CHECKPOINT_SLACK_S`), or at once when the log has grown past
        :data:`CHECKPOINT_FORCED_WAL_BYTES`; never while the replica's refresh reads the
        warehouse (DuckDB checkpoints only with no other transaction open). Its seconds are
        the cycle's ``checkpoint`` stage."""
        warehouse = self.dbt.warehouse()
        wal = self.settings.warehouse_path.with_name(self.settings.warehouse_path.name + ".wal")
        if warehouse is None or not wal.exists() or self._refreshing_replica():
            return
        size = wal.stat().st_size
        if size >= CHECKPOINT_FORCED_WAL_BYTES or (
            size >= CHECKPOINT_WAL_BYTES and slack_s >= CHECKPOINT_SLACK_S
        ):
            self._timed("checkpoint", lambda: checkpoint_deferring_vacuum(warehouse))

    def _compact_if_due(self, slack_s: float) -> None:
        """Compact bronze's small files and vacuum old versions every :data:`COMPACT_EVERY_S`,
        after a cycle that left :data:`CHECKPOINT_SLACK_S` of its period, or at once when a
        second period has passed (a machine too busy to leave any slack still compacts). Into
        files of :data:`WORKER_COMPACTED_FILE_BYTES`, under the loader's lock, as ``lakepulse
        compact``; its seconds are the cycle's ``compact`` stage. A failure is the cycle's
        error, and the next period tries again."""
        waited = time.monotonic() - self.compacted_at
        if waited < self.compact_every_s or (
            slack_s < CHECKPOINT_SLACK_S and waited < 2 * self.compact_every_s
        ):
            return
        self.compacted_at = time.monotonic()
        try:
            self._timed(
                "compact",
                lambda: compact_and_vacuum(
                    self.settings, COMPACT_RETAIN, target_size=WORKER_COMPACTED_FILE_BYTES
                ),
            )
        except Exception as error:
            self.report.error = f"compaction: {type(error).__name__}: {error}"

    def pause_after(self, report: CycleReport, took_s: float) -> float:
        """Seconds to wait before the next cycle: a back-off after a failure, a short poll
        when there was nothing to do, else the rest of :data:`CYCLE_EVERY_S`."""
        if report.error:
            return ERROR_BACKOFF_S
        if not report.tiers and self.turn is None and self.set_aside is None:
            return IDLE_POLL_S
        return max(0.0, self.cycle_every_s - took_s)

    def due(self, latest: str | None, now: float) -> list[Tier]:
        """The tiers to build now: those never built by this worker, and those with events
        loaded since their last build once their cadence allows (not one whose turn is under
        way)."""
        return [
            tier
            for tier in self.tiers
            if tier.name not in self.built_through
            or (
                latest != self.built_through[tier.name]
                and now - self.built_at[tier.name] >= tier.every_s
                and tier.name not in {turn[0] for turn in (self.turn, self.set_aside) if turn}
            )
        ]

    def starved(self, tier: Tier, now: float) -> bool:
        """Whether ``tier`` has waited :data:`STARVED_AFTER` of its cadences since its last turn
        began."""
        return now - self.built_at[tier.name] >= STARVED_AFTER * tier.every_s

    def next_turn(self, waiting: list[Tier], now: float) -> Tier:
        """Which of the slower tiers due takes the next turn: the fastest, so that a session
        turn never waits for a daily one (its steps and the replica's refresh, 20 s and more
        at ten million events); but a starved one goes first, so that a machine too slow to
        leave the session tier a gap never starves the daily (as the session tier did in
        session 13, when a session turn took longer than its cadence)."""
        starved = [tier for tier in waiting if self.starved(tier, now)]
        if starved:
            return max(starved, key=lambda t: (now - self.built_at[t.name]) / t.every_s)
        return min(waiting, key=lambda t: t.every_s)

    def comes_before(self, tier: Tier) -> bool:
        """Whether ``tier``'s turn goes before the one under way, which is set aside until it
        ends: a faster tier's, once the turn under way has taken a step since it began or
        resumed. So a session turn waits for at most one step of a daily one, and a daily turn
        still moves a step between two session turns however often those come due (a daily
        turn that went first until its end held the session tier back by its every step, ~30 s
        at ten million events). The later waves of a slower tier read only what its own turn
        built, so a faster tier's turns between two of them change nothing they read."""
        if self.turn is None or self.set_aside is not None or not self.turn_may_wait:
            return False
        under_way = next(t for t in self.tiers if t.name == self.turn[0])
        return tier.every_s < under_way.every_s

    def cycle(self, keep_open: bool = False) -> CycleReport:
        """One cycle (see the module docstring), under the pipeline lock. The warehouse is
        closed at its end unless ``keep_open`` and the cycle succeeded: the loop keeps it open
        between cycles while it holds the lock (:meth:`_loop`)."""
        with exclusive_lock(self.settings.pipeline_lock_path):
            report = self._cycle()
            if report.error or not keep_open:  # after a failure the next cycle opens it afresh
                self._close_warehouse()
        return report

    def _cycle(self) -> CycleReport:
        settings = self.settings
        # A catch-up (a tier never built by this worker, or due again whole after a failed
        # step) runs under the memory limit first: without it, a catch-up at ten million events
        # held a gigabyte more than any later cycle, the worker's peak. Only a catch-up that
        # failed (a backlog can need more, out of memory) is retried without the limit.
        catching_up = any(tier.name not in self.built_through for tier in self.tiers)
        limit = None if catching_up and self.catch_up_failed else self.memory_limit
        threads = None if catching_up else self.threads
        with exclusive_lock(settings.pipeline_lock_path), resource_limited(limit, threads):
            latest = self.landing.latest_name()
            report = self.report = CycleReport(
                time.time(), latest, memory_limit=limit, threads=threads
            )
            if self.replica_outcome is not None and not self._refreshing_replica():
                report.beside["replica"], report.beside_error = self.replica_outcome
                self.replica_outcome = None
            try:
                if (warehouse := self.dbt.warehouse()) is not None:
                    apply_resource_limits(warehouse, reset=True)  # this cycle's, as a new one
                if not self._prepared:
                    self._prepare()
                # With nothing landed yet the load still runs once: it creates the empty
                # bronze tables dbt reads on a new data directory.
                no_bronze = not (settings.bronze_events_path / "_delta_log").exists()
                if latest != self.loaded_through or no_bronze:
                    self._timed("load", lambda: run_ingest(settings))
                    self.loaded_through = latest
                    self.bronze_failure = self._timed("checks", self._bronze_failure)
                    report.bronze_passed = self.bronze_failure is None
                if self.bronze_failure:  # nothing is built until a later load passes
                    report.error = self.bronze_failure
                    return report
                installed = self._timed("prepare", lambda: prepare_dbt(settings))
                plan = tier_plan(self.dbt.manifest_path())
                defined = {trigger.model for trigger in installed.definitions.triggers}
                now = time.monotonic()
                waiting = []  # slower tiers due, whose turn is spread over cycles
                for tier in self.due(latest, now):
                    if tier.name in self.built_through and tier.every_s > 0:
                        waiting.append(tier)
                        continue
                    steps = self._start(tier, plan, defined, latest)
                    self._take(tier.name, steps, all_steps=True)  # live, or a first turn: whole
                if self.turn is None and self.set_aside is not None:
                    self.turn, self.set_aside = self.set_aside, None
                    self.turn_may_wait = False  # resumed: a step first
                if waiting:
                    tier = self.next_turn(waiting, now)
                    if self.comes_before(tier):
                        self.set_aside, self.turn = self.turn, None
                    if self.turn is None:
                        self.turn_may_wait = False  # begun: a step first
                        self.turn = (tier.name, self._start(tier, plan, defined, latest))
                if self.turn is not None:
                    self._take(*self.turn, all_steps=False)
                    self.turn_may_wait = True
            except Exception as error:  # reported, and the next cycle tries again
                report.error = f"{type(error).__name__}: {error}"
            finally:
                if catching_up:
                    self.catch_up_failed = report.error is not None
            return report

    def _start(
        self, tier: Tier, plan: TierPlan, defined: set[str], latest: str | None
    ) -> Iterator[None]:
        """Begin a tier's turn as of the landing file ``latest``: its steps, to be taken."""
        self.built_through[tier.name] = latest
        self.built_at[tier.name] = time.monotonic()
        return self._tier_steps(tier, plan, defined)

    def _take(self, tier: str, steps: Iterator[None], all_steps: bool) -> None:
        """Run the next step of a tier's turn (every step with ``all_steps``). A failed step
        ends the turn and makes the tier due again, to be taken in one piece."""
        try:
            for _ in steps:
                if not all_steps:
                    return
            if self.turn is not None and self.turn[1] is steps:
                self.turn = None
        except Exception:
            if self.turn is not None and self.turn[1] is steps:
                self.turn = None
            self.built_through.pop(tier, None)
            self.built_at.pop(tier, None)
            raise

    # -- steps ------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Once per worker: the sources dbt reads, and the models a release changed the
        columns of rebuilt (as every build path does)."""
        prepare_dbt(self.settings)
        migrate_changed_schemas(self.settings)
        self._prepared = True

    def _bronze_failure(self) -> str | None:
        from quality.bronze import check_latest_load

        result = check_latest_load(self.settings)
        return None if result.success else f"bronze suite failed: {result.summary()}"

    def _tier_steps(self, tier: Tier, plan: TierPlan, defined: set[str]) -> Iterator[None]:
        """One tier's turn: build, check, publish and fire it, yielding between steps (each
        writes to the report of the cycle it runs in). A slower tier builds in waves
        (:meth:`TierPlan.waves`), a step each. ``defined``: the candidate models of the
        triggers defined now; a trigger kind's model that no trigger uses is left out."""
        settings = self.settings
        warehouse = settings.warehouse_path
        slowest = tier is self.tiers[-1]
        unused = sorted(m for m in plan.of(tier.name) if _is_kind(m) and m not in defined)
        stage = f"dbt:{tier.name}"
        if tier.every_s > 0:
            waves = [wave - set(unused) for wave in plan.waves(tier.name)]
            selections = [" ".join(sorted(wave)) for wave in waves if wave]
        else:
            selections = [tier_selector(tier.name)]
        for number, select in enumerate(selections, start=1):
            if number > 1:
                yield  # the live tier's cycle comes between two waves
            last = number == len(selections)
            args = tier_build_args(
                settings,
                select,
                upstream_tests=slowest and last,
                leave_out=unused,
                wave=len(selections) > 1,
            )
            if tier.name not in self.report.tiers:
                self.report.tiers.append(tier.name)
            result = self._timed(stage, lambda args=args: self.dbt.invoke(*args))
            self.report.slowest[stage] = _slowest_nodes(
                result, also=self.report.slowest.get(stage, [])
            )
            remember_build(settings, args)
        marts = plan.marts(tier.name)
        if slowest:
            # The great-expectations suites of the marts: each repeats dbt tests that block
            # inside every tier's build, so they run on the slowest cadence, over every tier's
            # marts, and a failure holds that tier's publish back.
            failure = self._timed(
                "checks:marts", lambda: _mart_failure(settings, self.dbt.warehouse())
            )
            if failure:
                raise RuntimeError(failure)  # BI keeps the last good tables
        else:
            # The publish and the firing: a step of their own (the session marts' changed rows
            # took 2-4 s at ten million events). The slowest tier's small marts go out in its
            # last wave's step with its checks (0.6 s together): as steps of their own, each
            # waited for a session turn: a daily turn took 133 s at 11.1 M, now 34-39 s at 10.9 M.
            yield
        if settings.pg_url and marts:
            published = self._timed(
                f"publish:{tier.name}",
                lambda: publish(
                    settings,
                    settings.pg_url,
                    marts,
                    source=warehouse,
                    connection=self.dbt.warehouse(),
                ),
            )
            self.report.published.update({**published.rows, **published.deltas})
        if plan.of(tier.name) & defined:  # a tier without triggers has nothing to fire
            fired = self._timed(
                f"fire:{tier.name}",
                lambda: fire(
                    settings,
                    models=plan.of(tier.name),
                    source=warehouse,
                    connection=self.dbt.warehouse(),
                ),
            )
            count = sum(len(o.fired) for o in fired.outcomes.values())
            self.report.fired += count
            # Delivered now, not when the cycle ends: the live tier's alert would otherwise
            # wait for the rest of the cycle (a slower tier's step of ten seconds or more).
            self.undelivered = self.undelivered or count > 0
            self._deliver_in_background()
        if tier.every_s >= 300:
            self._refresh_replica_beside()

    def _refresh_replica_beside(self) -> None:
        """Refresh the read replica on a thread of its own, through a cursor of the open
        warehouse, while the next cycles run: at ten million events a refresh took 16 s, which
        in session 24's benchmark held the live tier back by as long once a daily turn. The
        copy reads one snapshot of the warehouse (:func:`refresh_replica`), so the builds beside
        it change nothing it copies. A refresh still running is left to end; the next daily
        turn refreshes again."""
        if self._refreshing_replica():
            return
        connection = self.dbt.warehouse()
        if connection is None:  # none open to read through: the copy opens the file, here
            self._timed("replica", lambda: refresh_replica(self.settings))
            return

        def refresh() -> None:
            started = time.perf_counter()
            error = None
            try:
                refresh_replica(self.settings, connection)
            except Exception as failure:  # the next daily turn tries again
                error = f"replica: {type(failure).__name__}: {failure}"
            self.replica_outcome = (time.perf_counter() - started, error)

        self.replica = threading.Thread(target=refresh, name="replica", daemon=True)
        self.replica.start()

    def _refreshing_replica(self) -> bool:
        return self.replica is not None and self.replica.is_alive()

    def _close_warehouse(self) -> None:
        """Close the warehouse once the replica's refresh through it has ended."""
        if self.replica is not None:
            self.replica.join()
        self.dbt.close_warehouse()

    def _deliver_in_background(self) -> None:
        """A delivery pass on a thread of its own, after a firing or every
        :data:`DELIVERY_EVERY_S`, when the previous one has ended (a firing it did not see
        starts the next one as soon as it has)."""
        if self.delivery is not None and self.delivery.is_alive():
            return
        if not self.undelivered and time.monotonic() - self.last_delivery < DELIVERY_EVERY_S:
            return
        self.last_delivery = time.monotonic()
        self.undelivered = False
        self.delivery = threading.Thread(
            target=deliver_pass,
            args=(self.settings,),
            kwargs={"deadline_seconds": DELIVERY_PASS_S},
            name="delivery",
            daemon=True,
        )
        self.delivery.start()

    def _timed(self, stage: str, step: Callable):
        """Run ``step``, adding its seconds to this cycle's report under ``stage``."""
        report = self.report
        started = time.perf_counter()
        try:
            return step()
        finally:
            report.stages[stage] = report.stages.get(stage, 0.0) + time.perf_counter() - started

    def _record(self, report: CycleReport) -> None:
        """Append the cycle's report to ``Settings.worker_cycles_path`` and hand it to
        ``on_cycle``: through the reporter's queue inside :meth:`run`, else at once."""
        line = json.dumps(asdict(report)) + "\n"
        with open(self.settings.worker_cycles_path, "a") as cycles:
            cycles.write(line)
        if self.reports is not None:
            self.reports.put(report)
        elif self.on_cycle:
            self.on_cycle(report)

    def _report_beside(self, reports: queue.Queue) -> None:
        """Hand each report to ``on_cycle`` until the ``None`` that ends :meth:`run`. Dagster's
        ``on_cycle`` writes a materialization per model built to its event log, a SQLite commit
        each: ~0.7 s a cycle at ten million events (py-spy), which delayed the next cycle's load
        by as much, and with it the live tier. A failing ``on_cycle`` is logged and the cycles
        go on: it reports what they did, it is not part of it."""
        while (report := reports.get()) is not None:
            try:
                self.on_cycle(report)
            except Exception:
                log.exception("reporting a cycle failed; the cycles go on")

    def _beat_until(self, stopped: threading.Event) -> None:
        """The heartbeat (:attr:`Settings.worker_heartbeat_path`) every few seconds, from a
        thread: a long cycle (a first catch-up, a schema migration) is not a dead worker."""
        path = self.settings.worker_heartbeat_path
        while True:
            beat(path)
            if stopped.wait(HEARTBEAT_EVERY_S):
                path.unlink(missing_ok=True)
                return


def _slowest_nodes(
    result, count: int = 5, also: list[tuple[str, float]] = ()
) -> list[tuple[str, float]]:
    """The ``count`` slowest nodes of a dbt build's result (and of ``also``, an earlier wave's
    in the same cycle), with their seconds."""
    timed = [(r.node.name, round(r.execution_time, 2)) for r in getattr(result, "results", [])]
    timed += [tuple(node) for node in also]
    return sorted(timed, key=lambda node: -node[1])[:count]


def _is_kind(model: str) -> bool:
    """Whether a model is a built-in trigger kind's candidates (``trigger_<kind>``)."""
    return model.startswith("trigger_")


def _mart_failure(settings: Settings, connection: Any | None) -> str | None:
    """The marts' great-expectations suites, on the warehouse (through ``connection`` when the
    worker keeps it open): the first failure."""
    from quality.marts import MART_SUITES, check_mart

    for mart in MART_SUITES:
        result = check_mart(settings, mart, source=settings.warehouse_path, connection=connection)
        if not result.success:
            return f"{mart} failed its suite: {result.summary()}"
    return None


def run_worker(
    settings: Settings,
    stop: threading.Event | None = None,
    until: float | None = None,
    on_cycle: Callable[[CycleReport], None] | None = None,
) -> None:
    """The pipeline worker's workflow (``lakepulse worker`` and Dagster's ``pipeline_worker``
    job): cycle until ``stop`` is set or the monotonic clock passes ``until``."""
    PipelineWorker(settings, on_cycle=on_cycle).run(stop or threading.Event(), until)
