"""Ctrl-C for supervisors: ``lakepulse demo`` and ``lakepulse bi`` poll a flag instead of
dying mid-shutdown, so they always stop the process groups they started."""

from __future__ import annotations

import signal


class StopRequested:
    """True once SIGINT or SIGTERM arrived (installs the handlers when created), or once a
    supervisor decided to stop (``request()``)."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.requested = True

    def request(self) -> None:
        self.requested = True

    def __bool__(self) -> bool:
        return self.requested
