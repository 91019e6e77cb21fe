"""A local webhook receiver: what ``make demo`` points a destination at, and what the delivery
benchmark posts to. It records every request, answers a scripted sequence of statuses (then
``default_status``), can wait before answering or never answer, and, given the destination's
secret, says whether each signature verified.

Run alone: ``python -m lakepulse.demo.sink [--port N] [--secret S]`` prints its URL and one
line per delivery.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and what the sink answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    signature_ok: bool | None

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    # The socketserver default accept backlog is 5: a deliverer with more connections in
    # flight than that, on a loaded machine, saw SYNs dropped and 2 s timeouts.
    request_queue_size = 128
    daemon_threads = True


class WebhookSink:
    """A ThreadingHTTPServer on loopback; use as a context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        statuses: list[int] | None = None,
        default_status: int = 200,
        delay_seconds: float = 0.0,
        hang: bool = False,
        secret: str | None = None,
        on_request: Callable[[Received], None] | None = None,
    ):
        self.statuses = list(statuses or [])
        self.default_status = default_status
        self.delay_seconds = delay_seconds
        self.hang = hang
        self.secret = secret
        self.on_request = on_request
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._open = threading.Event()
        self._open.set()
        self._in_flight = 0
        self._last_activity = time.monotonic()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                with sink._lock:
                    sink._in_flight += 1
                    sink._last_activity = time.monotonic()
                try:
                    length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                    body = self.rfile.read(length)
                    if sink.hang:
                        sink._released.wait(120)
                        return
                    if sink.delay_seconds:
                        sink._released.wait(sink.delay_seconds)
                    sink._open.wait()
                    sink._answer(self, body)
                finally:
                    with sink._lock:
                        sink._in_flight -= 1
                        sink._last_activity = time.monotonic()

            def log_message(self, *args) -> None:  # quiet: the sink reports through on_request
                pass

        self.server = _Server((host, port), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else self.default_status
            signature_ok = None
            if self.secret is not None:
                expected = (
                    "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
                )
                given = handler.headers.get("X-Lakepulse-Signature", "")
                signature_ok = hmac.compare_digest(expected, given)
                if not signature_ok:
                    status = 401
            received = Received(
                handler.path, dict(handler.headers.items()), body, status, signature_ok
            )
            self.requests.append(received)
        reply = b'{"ok":true}' if status < 300 else b'{"ok":false}'
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(reply)))
        handler.end_headers()
        handler.wfile.write(reply)
        if self.on_request:
            self.on_request(received)

    def hold(self) -> None:
        """Keep every request from now on unanswered (received, not recorded) until
        :meth:`release`: a test can stop a sender mid-batch at a known request."""
        self._open.clear()

    def release(self) -> None:
        """Answer the held requests, and the next ones at once."""
        self._open.set()

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered."""
        with self._lock:
            return self._in_flight

    def wait_idle(self, quiet_seconds: float = 0.5, timeout: float = 30.0) -> bool:
        """Wait until no request has been handled for ``quiet_seconds``, so ``requests`` holds
        every request a sender that has gone (killed, say) will ever have made. Read in the
        middle of a handler's delay, or before the accept loop took a queued connection, it
        would miss some. Returns False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                quiet_for = time.monotonic() - self._last_activity
                if self._in_flight == 0 and quiet_for >= quiet_seconds:
                    return True
            time.sleep(0.05)
        return False

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def start(self) -> WebhookSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._open.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> WebhookSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class LineWriter:
    """Writes whole lines to ``stream`` from the sink's handler threads: ``print`` writes a
    line's text and its end apart, so two deliveries answered at once could share a line, and
    a reader of the log line by line (``bench_freshness``, an operator's ``grep``) missed one."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", default=None, help="Verify X-Lakepulse-Signature with it.")
    args = parser.parse_args(argv)

    write_line = LineWriter(sys.stdout)

    def show(received: Received) -> None:
        document = received.json
        verdict = {True: "signature ok", False: "BAD SIGNATURE", None: "unsigned"}
        write_line(
            f"{received.status} {document.get('trigger')} firing {document.get('firing_id')} "
            f"user {document.get('user_id')} ({verdict[received.signature_ok]})"
        )

    sink = WebhookSink(host=args.host, port=args.port, secret=args.secret, on_request=show)
    print(f"webhook sink listening on {sink.url}", flush=True)
    try:
        sink.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sink.server.server_close()


if __name__ == "__main__":
    sys.exit(main())
