"""The landing writer the collector's worker processes share (``group_commit.SharedWriter``): a
round takes every worker's requests (one file for all, not one each), and waits a little for
those the workers are finishing, a request is answered
only once its round is written, a failed round answers each of its requests with the round's
``OSError``, a partial request is never written, and a worker whose writer went away fails
what it had sent and writes alone from then on."""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
from pathlib import Path

import orjson
import pytest

from ingestion.collector.group_commit import _ITEM, SharedCommitter, SharedWriter
from ingestion.intake import land_encoded
from ingestion.landing import LandingLog


def item(tenant: str, *ids: str) -> tuple[str, bytes, int, bytes, int]:
    lines = b"".join(orjson.dumps({"message_id": i}) + b"\n" for i in ids)
    return (tenant, lines, len(ids), b"", 0)


class GatedWrite:
    """A round's write that waits for ``gate`` while holding the round it was given (the
    first round's only, unless ``every``), recording each round's items."""

    def __init__(self, write, every: bool = False):
        self.write, self.every = write, every
        self.rounds: list[list] = []
        self.entered, self.gate = threading.Event(), threading.Event()

    def __call__(self, items: list) -> None:
        self.rounds.append(items)
        if self.every or len(self.rounds) == 1:
            self.entered.set()
            assert self.gate.wait(10)
        self.write(items)


class LocalStub:
    def __init__(self) -> None:
        self.items: list = []

    async def persist(self, item) -> None:
        self.items.append(item)


async def wait_for(predicate, seconds: float = 10) -> None:
    for _ in range(int(seconds * 100)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def landed(root: Path) -> list[list[str]]:
    """Each published file's message ids, in publication order."""
    return [
        [orjson.loads(line)["message_id"] for line in f.path.read_bytes().splitlines()]
        for f in sorted(LandingLog(root).files(), key=lambda f: f.name)
    ]


@pytest.fixture
def landing(tmp_path: Path) -> LandingLog:
    return LandingLog(tmp_path / "landing", keep_dirs_open=True)


def test_a_round_takes_every_workers_requests_into_one_file(landing):
    write = GatedWrite(lambda items: land_encoded(landing, items))
    writer = SharedWriter(write).start()

    async def scenario() -> None:
        workers = [SharedCommitter(writer.address, LocalStub()) for _ in range(3)]
        for worker in workers:
            await worker.connect()
        first = asyncio.ensure_future(workers[0].persist(item("acme", "a1")))
        await asyncio.to_thread(write.entered.wait, 10)
        # While the first round is being written, every worker sends a request.
        rest = [
            asyncio.ensure_future(w.persist(item("acme", f"{name}2")))
            for w, name in zip(workers, "abc", strict=True)
        ]
        await asyncio.sleep(0.2)
        assert not first.done()  # not durable yet: not answered
        write.gate.set()
        await asyncio.wait_for(asyncio.gather(first, *rest), 10)
        # The three requests sent during the first round: the second round, one file.
        assert [sorted(ids) for ids in landed(landing.root)] == [["a1"], ["a2", "b2", "c2"]]
        assert all(not worker.local.items for worker in workers)

    try:
        asyncio.run(scenario())
    finally:
        write.gate.set()
        writer.close()


def test_a_round_waits_its_linger_for_requests_the_workers_are_finishing(landing):
    """A request sent while the round its worker's neighbour opened is still lingering (no
    round in flight) is written by that round: one file, not one a request."""
    writer = SharedWriter(lambda items: land_encoded(landing, items), linger_s=2.0).start()

    async def scenario() -> None:
        first, second = (SharedCommitter(writer.address, LocalStub()) for _ in range(2))
        await first.connect()
        await second.connect()
        opened = asyncio.ensure_future(first.persist(item("acme", "first")))
        await asyncio.sleep(0.1)
        assert not opened.done()  # lingering: not written, not answered
        await asyncio.wait_for(asyncio.gather(opened, second.persist(item("acme", "next"))), 10)

    try:
        asyncio.run(scenario())
        assert [sorted(ids) for ids in landed(landing.root)] == [["first", "next"]]
    finally:
        writer.close()


def test_a_failed_round_answers_each_of_its_requests_with_its_oserror():
    def full(items: list) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    writer = SharedWriter(full).start()

    async def scenario() -> None:
        worker = SharedCommitter(writer.address, LocalStub())
        await worker.connect()
        results = await asyncio.gather(
            worker.persist(item("acme", "a")),
            worker.persist(item("beta", "b")),
            return_exceptions=True,
        )
        for result in results:
            assert isinstance(result, OSError)
            assert (result.errno, result.strerror) == (errno.ENOSPC, "No space left on device")
        assert worker.local.items == []  # refused, not written elsewhere

    try:
        asyncio.run(scenario())
    finally:
        writer.close()


def test_a_partial_request_is_never_written_and_other_workers_carry_on(landing):
    writer = SharedWriter(lambda items: land_encoded(landing, items)).start()
    tenant, lines = b"acme", orjson.dumps({"message_id": "cut"}) + b"\n"
    frame = _ITEM.pack(1, len(tenant), len(lines), 1, 0, 0) + tenant + lines
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dying:
            dying.connect("\0" + writer.address)
            dying.sendall(frame[:-5])  # killed mid-request

        async def scenario() -> None:
            worker = SharedCommitter(writer.address, LocalStub())
            await worker.connect()
            await asyncio.wait_for(worker.persist(item("acme", "whole")), 10)

        asyncio.run(scenario())
        assert landed(landing.root) == [["whole"]]
    finally:
        writer.close()


def test_a_worker_whose_writer_went_away_fails_what_it_sent_then_writes_alone(landing):
    write = GatedWrite(lambda items: land_encoded(landing, items), every=True)
    writer = SharedWriter(write).start()

    async def scenario() -> None:
        local = LocalStub()
        worker = SharedCommitter(writer.address, local)
        await worker.connect()
        sent = asyncio.ensure_future(worker.persist(item("acme", "in-flight")))
        await asyncio.to_thread(write.entered.wait, 10)
        worker.transport.abort()  # the connection drops, as when the writer's process dies
        with pytest.raises(OSError, match="went away"):
            await asyncio.wait_for(sent, 10)
        await asyncio.wait_for(worker.persist(item("acme", "after")), 10)
        assert local.items == [item("acme", "after")]

    try:
        asyncio.run(scenario())
    finally:
        write.gate.set()
        writer.close()
