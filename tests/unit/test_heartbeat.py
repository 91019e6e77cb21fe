"""The pipeline worker's heartbeat is read by Dagster's sensor while the worker writes it: a
reader never finds it empty or half written (the sensor failed a live worker's run when it did,
and a second worker then ran beside the first)."""

from __future__ import annotations

import json
import threading

from lakepulse.core.heartbeat import beat


def test_a_reader_never_sees_the_heartbeat_torn(tmp_path):
    path = tmp_path / "worker.heartbeat"
    beat(path)
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            beat(path)

    writer = threading.Thread(target=write)
    writer.start()
    torn = reads = 0
    try:
        while reads < 20_000:
            reads += 1
            try:
                json.loads(path.read_text())["at"]
            except (ValueError, KeyError):
                torn += 1
    finally:
        stop.set()
        writer.join()
    assert torn == 0, f"{torn} of {reads} reads found the heartbeat torn"
    assert [p.name for p in tmp_path.iterdir()] == ["worker.heartbeat"]  # no temporary left
