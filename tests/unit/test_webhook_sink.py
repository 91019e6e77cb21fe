"""The test receiver's own guarantees, which the kill tests' bounds rest on."""

import io
import socket
import threading
import time

from lakepulse.demo.sink import LineWriter, WebhookSink
from tests.waiting import wait_until


def _post_and_hang_up(url_port: int) -> None:
    """Send one request and close the connection without waiting for the answer, as a killed
    deliverer does."""
    body = b'{"firing_id": "f-1"}'
    with socket.create_connection(("127.0.0.1", url_port)) as conn:
        conn.sendall(
            b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )


def test_wait_idle_counts_a_request_still_being_answered_when_its_sender_left():
    with WebhookSink() as sink:
        sink.hold()
        _post_and_hang_up(sink.server.server_address[1])
        wait_until(lambda: sink.in_flight == 1, "the sink to receive the request")
        seen_while_held = len(sink.requests)  # received, not yet answered: not counted
        assert not sink.wait_idle(quiet_seconds=0.1, timeout=0.5)  # in flight: not idle
        sink.release()
        assert sink.wait_idle(quiet_seconds=0.2)
        seen_when_idle = len(sink.requests)
    assert seen_while_held == 0
    assert seen_when_idle == 1


def test_wait_idle_returns_false_while_a_request_hangs():
    with WebhookSink(hang=True) as sink:
        _post_and_hang_up(sink.server.server_address[1])
        assert not sink.wait_idle(quiet_seconds=0.1, timeout=1.0)


class _SlowStream(io.StringIO):
    """A log that takes its time over each write, as a busy disk does: other threads run."""

    def write(self, text: str) -> int:
        time.sleep(0.005)
        return super().write(text)


def test_lines_written_from_many_threads_at_once_stay_whole():
    """The demo's sink logs a line per delivery from its handler threads, and the freshness
    benchmark reads that log line by line: two deliveries on one line lost an alert's firing
    (and made its probe look two minutes late)."""
    stream = _SlowStream()
    write_line = LineWriter(stream)
    lines = [f"200 trigger_{i} firing f-{i} user None (signature ok)" for i in range(16)]
    threads = [threading.Thread(target=write_line, args=(line,)) for line in lines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(stream.getvalue().splitlines()) == sorted(lines)
