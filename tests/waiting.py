"""Waiting for a condition instead of for a while: the suite asserts behaviour, never speed
(the machines it runs on are shared and noisy)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout: float = 120.0) -> T:
    """Poll ``condition`` until it returns something truthy (returned); a generous timeout
    only turns a hang into a failure naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        time.sleep(0.02)
