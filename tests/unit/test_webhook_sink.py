"""The test receiver's own guarantees, which the kill tests' bounds rest on."""

import socket

from lakepulse.demo.sink import WebhookSink
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
