"""The warm dbt's build order (lakepulse/warehouse/dbt_schedule.py): dbt's own queue, given
the longest-path-first priority, runs a wave's longest chain from the start, where dbt's
depth-and-name order started the short nodes first. The graphs and their expected orders and
lengths are worked out by hand below, not by the code under test."""

from __future__ import annotations

import heapq
from types import SimpleNamespace

import networkx as nx
import pytest
from dbt.graph.queue import GraphQueue
from dbt.task.runnable import GraphRunnableTask

from lakepulse.warehouse import dbt_schedule
from lakepulse.warehouse.dbt_schedule import (
    longest_path_scores,
    node_seconds,
    remember_node_seconds,
    schedule_longest_path_first,
)

# a wave on two threads: two short models, a chain of three (c -> d -> e), a test of a and
# one of c
SECONDS = {
    "model.p.a_short": 0.2,
    "model.p.b_short": 0.5,
    "model.p.c_head": 0.9,
    "model.p.d_middle": 0.9,
    "model.p.e_tail": 0.4,
    "test.p.a_short_test": 0.05,
    "test.p.c_head_test": 0.05,
}
EDGES = [
    ("model.p.a_short", "test.p.a_short_test"),
    ("model.p.c_head", "test.p.c_head_test"),
    ("model.p.c_head", "model.p.d_middle"),
    ("model.p.d_middle", "model.p.e_tail"),
]


class _Manifest:
    """What dbt's queue asks of a manifest: the node of a unique id (here, the id itself)."""

    def expect(self, unique_id: str) -> str:
        return unique_id


def _wave_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(SECONDS)
    graph.add_edges_from(EDGES)
    return graph


def _run_on_two_threads(queue: GraphQueue) -> tuple[float, dict[str, float]]:
    """Play a build on dbt's queue: two threads, each taking the queue's next ready node when
    free (the lower-numbered thread first), each node taking its SECONDS. Returns when the last
    node ends and when each node started."""
    now, free, running, started = 0.0, [0, 1], [], {}
    while True:
        while free and not queue.inner.empty():
            node = queue.get(block=False)
            started[node] = now
            running.append((round(now + SECONDS[node], 6), free.pop(0), node))
        if not running:
            return now, started
        running.sort()
        now, thread, node = running.pop(0)
        queue.mark_done(node)
        free = sorted([*free, thread])


def test_longest_path_scores_by_hand():
    scores = longest_path_scores(
        {node: [child for parent, child in EDGES if parent == node] for node in SECONDS},
        SECONDS,
    )
    assert scores == pytest.approx(
        {
            "model.p.a_short": -0.25,
            "model.p.b_short": -0.5,
            "model.p.c_head": -2.2,
            "model.p.d_middle": -1.3,
            "model.p.e_tail": -0.4,
            "test.p.a_short_test": -0.05,
            "test.p.c_head_test": -0.05,
        }
    )


def test_dbt_queue_runs_the_longest_chain_first(monkeypatch):
    monkeypatch.setattr(dbt_schedule, "_last_seconds", dict(SECONDS))
    schedule_longest_path_first()
    queue = GraphQueue(_wave_graph(), _Manifest(), set(SECONDS))

    ended, started = _run_on_two_threads(queue)

    # thread 0: c_head 0-0.9, d_middle 0.9-1.8, e_tail 1.8-2.2
    # thread 1: b_short 0-0.5, a_short 0.5-0.7, its test 0.7-0.75, c_head's test 0.9-0.95
    assert ended == pytest.approx(2.2)  # the chain's own length
    assert started == pytest.approx(
        {
            "model.p.c_head": 0.0,
            "model.p.b_short": 0.0,
            "model.p.a_short": 0.5,
            "test.p.a_short_test": 0.7,
            "model.p.d_middle": 0.9,
            "test.p.c_head_test": 0.9,
            "model.p.e_tail": 1.8,
        }
    )


def test_dbt_own_order_started_the_short_nodes_first(monkeypatch):
    """Why: dbt's order (depth, then name) on the same wave. If dbt's pinned version changes
    its order, this says so and the module's reasoning needs a new look."""
    schedule_longest_path_first()
    monkeypatch.setattr(GraphQueue, "_get_scores", GraphQueue.dbt_get_scores)
    queue = GraphQueue(_wave_graph(), _Manifest(), set(SECONDS))

    ended, started = _run_on_two_threads(queue)

    # thread 0: a_short 0-0.2, c_head 0.2-1.1, d_middle 1.1-2.0, e_tail 2.0-2.4
    # thread 1: b_short 0-0.5, a_short's test 0.5-0.55, c_head's test 1.1-1.15
    assert ended == pytest.approx(2.4)
    assert started["model.p.c_head"] == pytest.approx(0.2)


def test_node_seconds_are_the_last_run_else_a_guess_by_kind(monkeypatch):
    monkeypatch.setattr(dbt_schedule, "_last_seconds", {})
    assert node_seconds("model.p.new") == 0.3
    assert node_seconds("test.p.new") == 0.03
    assert node_seconds("seed.p.new") == 0.05

    def ran(unique_id: str, seconds: float | None) -> SimpleNamespace:
        return SimpleNamespace(node=SimpleNamespace(unique_id=unique_id), execution_time=seconds)

    remember_node_seconds([ran("model.p.new", 1.25), ran("test.p.new", None)])
    remember_node_seconds([ran("model.p.new", 0.75), SimpleNamespace(node=None)])
    assert node_seconds("model.p.new") == 0.75  # the last run, not the first
    assert node_seconds("test.p.new") == 0.03


# -- a node is handed to dbt's thread pool only when one of its threads is free ------------

HANDED = {
    "model.p.a_head": 1.0,  # a_head -> b_next: the longest chain
    "model.p.b_next": 1.0,
    "model.p.c_long": 1.0,
    "model.p.s1": 0.3,
    "model.p.s2": 0.3,
    "model.p.s3": 0.3,
    "model.p.s4": 0.3,
}


class _VirtualPool:
    """dbt's thread pool (a ``ThreadPool``: what it is handed runs first come, first served)
    with two threads, in virtual time: a node takes its HANDED seconds."""

    def __init__(self) -> None:
        self.now, self.running, self.handed, self.started = 0.0, [], [], {}

    def apply_async(self, function, args, callback) -> None:
        self.handed.append((args[0], callback))
        self._start_what_fits()

    def _start_what_fits(self) -> None:
        while self.handed and len(self.running) < 2:
            runner, callback = self.handed.pop(0)
            node = runner.node.unique_id
            self.started[node] = self.now
            end = round(self.now + HANDED[node], 6)
            heapq.heappush(self.running, (end, len(self.started), runner, callback))

    def finish_one(self) -> None:
        self.now, _, runner, callback = heapq.heappop(self.running)
        callback(runner)
        self._start_what_fits()


class _Task:
    """What dbt's ``run_queue`` and ``handle_job_queue`` use of a build task."""

    handle_job_queue = GraphRunnableTask.handle_job_queue
    _raise_set_error = GraphRunnableTask._raise_set_error
    _submit = GraphRunnableTask._submit

    def __init__(self, queue: GraphQueue) -> None:
        self.job_queue = queue
        self.config = SimpleNamespace(threads=2, args=SimpleNamespace(single_threaded=False))
        self._raise_next_tick = None
        self._skipped_children: dict = {}

    def get_runner(self, node: str) -> SimpleNamespace:
        return SimpleNamespace(node=SimpleNamespace(unique_id=node))

    def call_runner(self, runner):  # the pool runs it; here, the virtual pool times it
        return runner

    def _handle_result(self, result) -> None:
        pass


class _Semaphore:
    """A semaphore in the pool's virtual time: waiting for a permit lets the pool run until a
    node ends and gives one back."""

    def __init__(self, pool: _VirtualPool, value: int) -> None:
        self.pool, self.value = pool, value

    def acquire(self) -> None:
        while self.value == 0:
            self.pool.finish_one()
        self.value -= 1

    def release(self) -> None:
        self.value += 1


def _run_queue(monkeypatch, run_queue) -> dict[str, float]:
    """Run ``run_queue`` (dbt's, or the patched one) over HANDED's graph with the virtual pool;
    returns when each node started, and "end": when the last one ended."""
    from dbt.task import runnable

    monkeypatch.setattr(dbt_schedule, "_last_seconds", dict(HANDED))
    graph = nx.DiGraph()
    graph.add_nodes_from(HANDED)
    graph.add_edge("model.p.a_head", "model.p.b_next")
    queue = GraphQueue(graph, _Manifest(), set(HANDED))
    pool = _VirtualPool()
    take = queue.get

    def get(block: bool = True, timeout: float | None = None) -> str:
        while queue.inner.empty():  # dbt's main thread waits: the pool runs meanwhile
            pool.finish_one()
        return take(block, timeout)

    def join() -> None:
        while pool.running:
            pool.finish_one()

    monkeypatch.setattr(queue, "get", get)
    monkeypatch.setattr(queue, "join", join)
    monkeypatch.setattr(runnable, "get_flags", lambda: SimpleNamespace(FAIL_FAST=False))
    monkeypatch.setattr(
        dbt_schedule,
        "threading",
        SimpleNamespace(Semaphore=lambda value: _Semaphore(pool, value)),
    )
    run_queue(_Task(queue), pool)
    return {**pool.started, "end": pool.now}


def test_a_node_ready_later_goes_before_short_nodes_ready_earlier(monkeypatch):
    schedule_longest_path_first()
    timeline = _run_queue(monkeypatch, GraphRunnableTask.run_queue)
    # a_head and c_long 0-1; b_next 1-2 (the free thread's best ready node); the short ones
    # one after another on the other thread: 1-1.3, 1.3-1.6, 1.6-1.9, 1.9-2.2
    assert timeline == pytest.approx(
        {
            "model.p.a_head": 0.0,
            "model.p.c_long": 0.0,
            "model.p.b_next": 1.0,
            "model.p.s1": 1.0,
            "model.p.s2": 1.3,
            "model.p.s3": 1.6,
            "model.p.s4": 1.9,
            "end": 2.2,
        }
    )


def test_dbt_own_run_queue_hands_every_ready_node_over_at_once(monkeypatch):
    """Why: dbt hands the four short nodes over at the start, so b_next, ready at 1, waits
    behind them in the pool whatever its priority."""
    schedule_longest_path_first()
    timeline = _run_queue(monkeypatch, GraphRunnableTask.dbt_run_queue)
    # s1, s2 1-1.3 (as a_head and c_long end), s3, s4 1.3-1.6, b_next 1.6-2.6
    assert timeline["model.p.b_next"] == pytest.approx(1.6)
    assert timeline["end"] == pytest.approx(2.6)
