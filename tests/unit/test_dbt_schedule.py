"""The warm dbt's build order (lakepulse/warehouse/dbt_schedule.py): dbt's own queue, given
the longest-path-first priority, runs a wave's longest chain from the start, where dbt's
depth-and-name order started the short nodes first. The graphs and their expected orders and
lengths are worked out by hand below, not by the code under test."""

from __future__ import annotations

from types import SimpleNamespace

import networkx as nx
import pytest
from dbt.graph.queue import GraphQueue

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
