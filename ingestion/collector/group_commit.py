"""Group commit: the collector's requests share write rounds, so fsyncs and landing files grow
with rounds, not with requests, and each request is still acknowledged only once its own rows
are durable."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("lakepulse.collector")


class GroupCommitter:
    """Requests that arrive while a write is in flight are written together by the next one
    (``write`` runs in a thread, for the whole round); each caller returns only when its own
    rows are durable, or gets the round's ``OSError``."""

    def __init__(self, write: Callable[[list[Any]], None]):
        self.write = write
        self.pending: list[tuple[Any, asyncio.Future]] = []
        self.flusher: asyncio.Task | None = None

    async def persist(self, item: Any) -> None:
        """``item`` (one request's share of a round) written by the next round."""
        future = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                await asyncio.to_thread(self.write, [item for item, _ in batch])
            except Exception as err:
                failure = err if isinstance(err, OSError) else OSError(str(err))
                for _, future in batch:
                    if not future.done():  # a caller whose client went away is cancelled
                        future.set_exception(failure)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)


WRITER_ENV = "LAKEPULSE_COLLECTOR_WRITER"
"""The address of the landing writer the worker processes share, set by ``serve`` for them."""
_ITEM = struct.Struct("<QIIIII")
"""A request's share of a round, worker to writer: its id, then the sizes of the tenant, the
landing lines and the quarantine lines that follow it, and the rows each holds."""
_ACK = struct.Struct("<QiI")
"""The writer's answer for one request once its round is over: its id, ``errno`` and the
length of the message that follows (0: durable)."""
_CHUNK = 1 << 18
LINGER_S = 0.001
"""How long the shared writer holds a round open after its first request arrived, for the
requests the workers are finishing meanwhile (group commit's delay, as PostgreSQL's
``commit_delay``): under load a round takes a few times more requests, so there are that many
times fewer files, fsyncs and renames an event; a request waits at most this much longer.
``LAKEPULSE_COLLECTOR_LINGER_S`` overrides it."""


class _Peer:
    """One worker's connection to the shared writer: bytes read, requests not written yet."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()
        self.items: list[tuple[int, tuple[str, memoryview, int, memoryview, int]]] = []

    def parse(self) -> None:
        """The complete requests in ``buffer`` into ``items`` (a partial one waits)."""
        buffer, start = self.buffer, 0
        while len(buffer) - start >= _ITEM.size:
            item_id, tenant, events, stored, rejected, quarantined = _ITEM.unpack_from(
                buffer, start
            )
            at = start + _ITEM.size
            end = at + tenant + events + rejected
            if len(buffer) < end:
                break
            # One copy out of the buffer; the lines are views of it (os.writev takes them).
            body = memoryview(bytes(memoryview(buffer)[at:end]))
            self.items.append(
                (
                    item_id,
                    (
                        str(body[:tenant], "utf-8"),
                        body[tenant : tenant + events],
                        stored,
                        body[tenant + events :],
                        quarantined,
                    ),
                )
            )
            start = end
        if start:
            del buffer[:start]


class SharedWriter:
    """The landing writer of the worker processes (``lakepulse collect --workers N``): a thread
    of the supervising process. Each worker sends it the requests its event loop encoded, over
    a Unix socket. A round starts ``linger_s`` after the first request it takes and takes
    whatever every worker sent until then (or while the last round was being written):
    ``write`` with them all, one file per tenant and kind for all workers, not one per worker;
    then it answers each request, durable or the round's ``OSError``. A request is written at
    most once: a partial one (its worker killed mid-send) never; a whole one whose worker went
    away before its round may be, unanswered (its client retries, as after a crash between a
    round and its answers)."""

    def __init__(self, write: Callable[[list[Any]], Any], linger_s: float | None = None):
        self.write = write
        self.linger_s = (
            float(os.environ.get("LAKEPULSE_COLLECTOR_LINGER_S", LINGER_S))
            if linger_s is None
            else linger_s
        )
        self.address = f"lakepulse-landing-writer-{os.getpid()}-{secrets.token_hex(8)}"
        """The name of an abstract Unix socket (no file to leave behind); only this user's
        processes are served."""
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind("\0" + self.address)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="landing-writer", daemon=True)

    def start(self) -> SharedWriter:
        self._thread.start()
        return self

    def close(self) -> None:
        self._wake_w.send(b"x")
        self._thread.join(10)

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ, "accept")
        selector.register(self._wake_r, selectors.EVENT_READ, "stop")
        peers: list[_Peer] = []
        chunk = bytearray(_CHUNK)
        linger, since = self.linger_s, None
        try:
            while True:
                timeout = None if since is None else max(0.0, since + linger - time.monotonic())
                for key, _ in selector.select(timeout):
                    if key.data == "stop":
                        return
                    if key.data == "accept":
                        peer = self._accept()
                        if peer is not None:
                            selector.register(peer.sock, selectors.EVENT_READ, peer)
                            peers.append(peer)
                    elif not self._read(key.data, chunk):
                        selector.unregister(key.data.sock)
                        key.data.sock.close()
                        peers.remove(key.data)
                if not any(peer.items for peer in peers):
                    since = None  # (the requests of a worker that went away are dropped)
                    continue
                now = time.monotonic()
                if since is None:
                    since = now
                if now < since + linger:
                    continue
                since = None
                for peer in self._commit(peers):
                    selector.unregister(peer.sock)
                    peer.sock.close()
                    peers.remove(peer)
        finally:
            for peer in peers:
                peer.sock.close()
            selector.close()
            for sock in (self.listener, self._wake_r, self._wake_w):
                sock.close()

    def _accept(self) -> _Peer | None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return None
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            sock.close()
            return None
        sock.setblocking(False)
        return _Peer(sock)

    @staticmethod
    def _read(peer: _Peer, chunk: bytearray) -> bool:
        """What ``peer`` sent so far, parsed; False once it has gone away (the requests it had
        sent are dropped: nobody waits for their answer)."""
        view = memoryview(chunk)
        while True:
            try:
                size = peer.sock.recv_into(view)
            except BlockingIOError:
                break
            except OSError:
                return False
            if not size:
                return False
            peer.buffer += view[:size]
            if size < len(chunk):
                break
        peer.parse()
        return True

    def _commit(self, peers: list[_Peer]) -> list[_Peer]:
        """One round for every request received; the peers that could not take their answers."""
        batch = [(peer, peer.items) for peer in peers if peer.items]
        for peer, _ in batch:
            peer.items = []
        errno, message = 0, b""
        try:
            self.write([item for _, items in batch for _, item in items])
        except Exception as err:
            errno = (err.errno or 0) if isinstance(err, OSError) else 0
            text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            message = (text or type(err).__name__).encode()
        lost = []
        for peer, items in batch:
            answer = b"".join(
                _ACK.pack(item_id, errno, len(message)) + message for item_id, _ in items
            )
            try:
                peer.sock.sendall(answer)
            except OSError:  # a worker that stopped reading its answers: dropped
                lost.append(peer)
        return lost


class SharedCommitter(asyncio.Protocol):
    """A worker's side of the :class:`SharedWriter`: ``persist`` sends the request's encoded
    rows and returns once the writer answers that they are durable (or raises its
    ``OSError``). Until connected, or once the writer is gone, ``local`` (this worker's own
    group commit) writes instead; requests sent to a writer that went away are answered with
    an ``OSError``, never written again here."""

    def __init__(self, address: str, local: GroupCommitter):
        self.address = address
        self.local = local
        self.transport: asyncio.Transport | None = None
        self.waiting: dict[int, asyncio.Future] = {}
        self.buffer = bytearray()
        self._ids = itertools.count()

    async def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:  # connected here: uvloop takes no abstract address, only the socket
            sock.connect("\0" + self.address)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        await asyncio.get_running_loop().create_unix_connection(lambda: self, sock=sock)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        log.warning("the shared landing writer went away (%s); this worker writes alone", exc)
        waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(OSError("the landing writer went away"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        start = 0
        while len(buffer) - start >= _ACK.size:
            item_id, errno, length = _ACK.unpack_from(buffer, start)
            end = start + _ACK.size + length
            if len(buffer) < end:
                break
            future = self.waiting.pop(item_id, None)
            if future is not None and not future.done():
                if length:
                    text = bytes(buffer[start + _ACK.size : end]).decode()
                    future.set_exception(OSError(errno, text) if errno else OSError(text))
                else:
                    future.set_result(None)
            start = end
        if start:
            del buffer[:start]

    async def persist(self, item: tuple[str, bytes, int, bytes, int]) -> None:
        transport = self.transport
        if transport is None:
            await self.local.persist(item)
            return
        tenant_id, events, stored, rejected, quarantined = item
        tenant = tenant_id.encode()
        item_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self.waiting[item_id] = future
        header = _ITEM.pack(item_id, len(tenant), len(events), stored, len(rejected), quarantined)
        transport.write(b"".join((header, tenant, events, rejected)))
        try:
            await future
        finally:
            self.waiting.pop(item_id, None)
