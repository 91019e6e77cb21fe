"""One process at a time per data directory for the workflows that must not overlap (the
loader, the trigger firing and delivery, the publish): an advisory ``flock`` on a file beside
the state it guards, which the kernel drops when its holder dies, SIGKILL included, so no
stale lock ever needs clearing."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_HELD: dict[tuple[str, int], int] = {}
"""Locks this process holds, per (path, thread), and how deeply: a workflow that takes the
pipeline lock may call another that takes it too (erasure calls the rebuild)."""


@contextmanager
def exclusive_lock(
    path: Path, *, wait: bool = True, on_wait: Callable[[], None] | None = None
) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if missing). Yields True once held. With
    ``wait=False`` it yields False at once when another process holds it; otherwise it calls
    ``on_wait`` (to tell a user why nothing happens yet) and blocks until the holder ends.
    Re-entrant within a thread: taking a lock this thread holds already yields True at once."""
    held = (str(path.resolve()), threading.get_ident())
    if _HELD.get(held):
        _HELD[held] += 1
        try:
            yield True
        finally:
            _HELD[held] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            if on_wait:
                on_wait()
            # Said while waiting (a shared lock on the waiters' file, dropped once this one is
            # held, or by the kernel if this process dies): a holder that would keep the lock
            # through its idle time lets go when someone waits (:func:`lock_wanted`).
            with open(_waiters_path(path), "a") as waiting:
                fcntl.flock(waiting, fcntl.LOCK_SH)
                fcntl.flock(handle, fcntl.LOCK_EX)
        _HELD[held] = 1
        try:
            yield True
        finally:
            del _HELD[held]
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_wanted(path: Path) -> bool:
    """Whether another process waits for the lock on ``path`` now (see :func:`exclusive_lock`).
    The pipeline worker asks it between two cycles, holding the lock, so that it keeps the
    warehouse open through its pause unless someone needs it."""
    waiters = _waiters_path(path)
    if not waiters.exists():
        return False
    with open(waiters, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _waiters_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.waiting")
