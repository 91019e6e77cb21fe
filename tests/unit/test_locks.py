"""The advisory lock the loader, firing, delivery and publish share: held by a real process,
it makes others wait (or, asked not to, say so at once), and a holder killed with SIGKILL
leaves nothing to clear."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from lakepulse.core.locks import exclusive_lock, lock_wanted
from tests.conftest import hold_lock


def test_a_lock_held_elsewhere_is_refused_without_waiting_and_freed_by_sigkill(tmp_path):
    path = tmp_path / "state" / "work.lock"
    path.parent.mkdir()
    holder = hold_lock(path)
    try:
        with exclusive_lock(path, wait=False) as locked:
            assert locked is False
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with exclusive_lock(path, wait=False) as locked:
        assert locked is True


def test_a_waiter_is_told_and_proceeds_once_the_holder_dies(tmp_path):
    path = tmp_path / "work.lock"
    holder = hold_lock(path)
    told, entered = threading.Event(), threading.Event()

    def wait_for_it() -> None:
        with exclusive_lock(path, on_wait=told.set) as locked:
            assert locked
            entered.set()

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    assert told.wait(30)
    assert not entered.is_set()  # cannot be: the holder still has it
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    waiter.join(30)
    assert entered.is_set()


def test_an_uncontended_lock_is_taken_without_a_word(tmp_path):
    told = []
    with exclusive_lock(tmp_path / "a" / "b.lock", on_wait=lambda: told.append(1)) as locked:
        assert locked
    assert told == []


def test_a_holder_learns_that_another_process_waits_and_not_otherwise(tmp_path):
    path = tmp_path / "work.lock"
    with exclusive_lock(path) as locked:
        assert locked
        assert lock_wanted(path) is False
        waiter = subprocess.Popen(
            [sys.executable, "-c", WAIT_FOR_LOCK, str(path)], stdout=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 30
        while not lock_wanted(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lock_wanted(path) is True
    assert waiter.stdout.readline().strip() == "held"  # it proceeds once this one lets go
    waiter.wait(30)
    assert lock_wanted(path) is False  # and waits no more


def test_a_waiter_killed_while_waiting_is_no_longer_wanting(tmp_path):
    path = tmp_path / "work.lock"
    with exclusive_lock(path):
        waiter = subprocess.Popen([sys.executable, "-c", WAIT_FOR_LOCK, str(path)])
        deadline = time.monotonic() + 30
        while not lock_wanted(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lock_wanted(path) is True
        waiter.send_signal(signal.SIGKILL)
        waiter.wait()
        assert lock_wanted(path) is False


WAIT_FOR_LOCK = """
import sys
from pathlib import Path
from lakepulse.core.locks import exclusive_lock
with exclusive_lock(Path(sys.argv[1])):
    print("held", flush=True)
"""
