"""The order in which the warm dbt of the pipeline worker runs a build's nodes: the longest
remaining path first, in the seconds each node took when it last ran.

dbt runs a build's nodes on its threads (two: ``profiles.yml``) from a priority queue, and
its priority is a node's depth in the selected graph, ties broken by name. In a worker's
waves that often started a short node ahead of a long chain: in a session tier's second wave
at ten million events, ``fct_sessions`` (0.2 s) went before ``int_funnel_events``, which
heads the 2.2 s chain to ``mart_funnel_conversion``, and a finished ``int_funnel_events``
waited for a rejected-events mart and four tests before ``int_funnel_progress`` started: the
wave took 3.08 s where its longest chain is 2.55 s. Every cycle's live tier waits for the
wave it follows, so a wave's length is on the live tier's latency.

:func:`schedule_longest_path_first` gives dbt's queue another priority: a node's own seconds
plus the longest chain of seconds after it (the classic list scheduling of a task graph on a
few workers). A node's seconds are those it took the last time this process ran it
(:func:`remember_node_seconds`), and a guess by kind before it ever ran. And dbt's main
thread takes a node from the queue only when one of dbt's threads is free, so a node that
becomes ready late is not queued behind every short node handed over before it. Only the
order changes: a node still starts only once everything it needs is done."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Mapping
from graphlib import TopologicalSorter
from typing import Any

FIRST_GUESS_S = {"model": 0.3, "test": 0.03}
"""The seconds assumed for a node this process has not run yet, by its kind (the first part of
its unique id); any other kind (seed, snapshot, hook) is :data:`OTHER_GUESS_S`."""

OTHER_GUESS_S = 0.05

_seconds_lock = threading.Lock()
_last_seconds: dict[str, float] = {}
"""unique id -> the seconds the node took when this process last ran it."""


def remember_node_seconds(results: Iterable[Any]) -> None:
    """Keep the seconds each node of a finished build took (dbt's ``RunResult``s: ``node`` and
    ``execution_time``), for the order of the next build that runs it."""
    measured = {
        result.node.unique_id: float(result.execution_time)
        for result in results
        if getattr(result, "node", None) is not None and result.execution_time is not None
    }
    with _seconds_lock:
        _last_seconds.update(measured)


def node_seconds(unique_id: str) -> float:
    """The seconds a node is expected to take: its last run's, else a guess by its kind."""
    with _seconds_lock:
        seconds = _last_seconds.get(unique_id)
    if seconds is not None:
        return seconds
    return FIRST_GUESS_S.get(unique_id.partition(".")[0], OTHER_GUESS_S)


def longest_path_scores(
    successors: Mapping[str, Iterable[str]], seconds: Mapping[str, float]
) -> dict[str, float]:
    """Each node's priority in dbt's queue, lowest first: minus the seconds of the longest
    chain that starts at it (its own included). ``successors`` maps every node to the nodes
    that wait for it; the graph has no cycle (dbt refuses one)."""
    remaining: dict[str, float] = {}
    # graphlib orders a node after what the mapping lists for it: here, after its successors
    for node in TopologicalSorter(successors).static_order():
        after = max((remaining[child] for child in successors[node]), default=0.0)
        remaining[node] = seconds[node] + after
    return {node: -chain for node, chain in remaining.items()}


@functools.cache
def schedule_longest_path_first() -> None:
    """Make every dbt build of this process take its ready nodes longest path first (see the
    module docstring). Idempotent. Two methods of the dbt-core pinned in
    ``requirements.lock`` are replaced, and unit tests check they are still there and used:

    - ``GraphQueue._get_scores``, the queue's priority;
    - ``GraphRunnableTask.run_queue``, so that a node is taken from the queue only when one of
      dbt's threads is free (:func:`_take_when_a_thread_is_free`)."""
    from dbt.graph.queue import GraphQueue
    from dbt.task.runnable import GraphRunnableTask

    def _get_scores(self: Any, graph: Any) -> dict[str, float]:
        successors = {node: list(graph.successors(node)) for node in graph.nodes()}
        return longest_path_scores(successors, {node: node_seconds(node) for node in successors})

    GraphQueue.dbt_get_scores = GraphQueue._get_scores  # dbt's own, kept for comparison
    GraphQueue._get_scores = _get_scores
    GraphRunnableTask.dbt_run_queue = GraphRunnableTask.run_queue
    GraphRunnableTask.run_queue = _take_when_a_thread_is_free(GraphRunnableTask.run_queue)


def _take_when_a_thread_is_free(run_queue: Any) -> Any:
    """dbt's ``run_queue``, taking a node from the queue only when one of its threads is free.

    dbt's main thread takes every node from the queue as soon as it is ready and hands it to
    its thread pool, which runs what it was handed first come, first served: the priority
    then orders only the nodes that became ready together. In a session wave at ten million
    events, ``int_funnel_progress``, ready after ``int_funnel_events``, waited a second behind
    eight trigger models and a dozen tests handed over before it. Holding the main thread
    until a thread is free makes each free thread take the best node ready at that moment."""

    @functools.wraps(run_queue)
    def run_queue_when_free(self: Any, pool: Any) -> None:
        free_threads = threading.Semaphore(max(1, int(self.config.threads or 1)))
        hand_over = self.handle_job_queue

        def handle_job_queue(pool: Any, callback: Any) -> None:
            free_threads.acquire()

            def done(result: Any) -> None:
                try:
                    callback(result)  # marks the node done: what it unblocks is queued first
                finally:
                    free_threads.release()

            hand_over(pool, done)

        self.handle_job_queue = handle_job_queue
        try:
            run_queue(self, pool)
        finally:
            del self.handle_job_queue

    return run_queue_when_free
