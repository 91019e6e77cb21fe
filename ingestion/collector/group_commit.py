"""Group commit: the collector's requests share write rounds, so fsyncs and landing files grow
with rounds, not with requests, and each request is still acknowledged only once its own rows
are durable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


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
