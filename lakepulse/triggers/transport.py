"""Sending one request to one destination, safely: the HTTP and SMTP clients of delivery.

HTTP goes through the standard library's ``http.client`` with its connection factory replaced:
the host is resolved once, every address is checked, and the socket connects to the checked
address itself. So a URL whose name resolves to loopback, a private or link-local network, or
a cloud metadata address (anything that is not globally routable) is refused unless the
destination says ``allow_private: true``, and a DNS answer that changes between a check and
the connect (rebinding) cannot slip through, because there is no second lookup. Redirects are
followed only to the same scheme, host and port (307/308, which keep the POST), response
bodies are read up to :data:`MAX_RESPONSE_BYTES`, and error texts never include the URL (a
Slack URL is itself a secret).
"""

from __future__ import annotations

import http.client
import ipaddress
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from functools import partial
from urllib.parse import urljoin, urlsplit

USER_AGENT = "lakepulse-delivery/1"
"""The User-Agent of every HTTP delivery (webhook and Slack)."""

MAX_RESPONSE_BYTES = 64 * 1024
"""A receiver's answer is read up to this much; the rest is dropped with the connection."""

MAX_REDIRECTS = 3
RETRYABLE_4XX = frozenset({408, 429})
"""Client errors that mean "later", not "never": request timeout and rate limiting."""


@dataclass(frozen=True)
class Outcome:
    """What one attempt achieved. ``retryable`` failures go back on the schedule; the others
    are dead letters at once."""

    delivered: bool
    retryable: bool = False
    status_code: int | None = None
    error: str | None = None


class UnsafeAddress(ConnectionError):
    """The destination's host resolves only to addresses it may not reach."""


def is_public(address: str) -> bool:
    """Globally routable unicast: not loopback, private, link-local (cloud metadata lives at
    169.254.169.254 and fd00:ec2::254), shared, reserved, multicast or unspecified."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def vetted_connection(
    address: tuple[str, int],
    timeout: float | None = None,
    source_address: tuple[str, int] | None = None,
    *,
    allow_private: bool,
) -> socket.socket:
    """``socket.create_connection`` that checks each resolved address before connecting to it."""
    host, port = address
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    refused: list[str] = []
    last_error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        ip = str(sockaddr[0])
        if not allow_private and not is_public(ip):
            refused.append(ip)
            continue
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as err:
            sock.close()
            last_error = err
    if last_error is not None:
        raise last_error
    raise UnsafeAddress(
        f"host resolves to a non-public address ({', '.join(sorted(set(refused)))}); "
        "set `allow_private: true` on the destination if that is intended"
    )


def post(
    url: str, body: bytes, headers: dict[str, str], timeout: float, allow_private: bool
) -> Outcome:
    """POST ``body``: 2xx delivered; 5xx, 408, 429, timeouts and connection failures retryable;
    other 4xx, unsafe addresses and redirects elsewhere are dead letters."""
    for _ in range(MAX_REDIRECTS + 1):
        try:
            status, location = _post_once(url, body, headers, timeout, allow_private)
        except UnsafeAddress as err:
            return Outcome(False, retryable=False, error=f"refused: {err}")
        except TimeoutError:
            return Outcome(False, retryable=True, error=f"timed out after {timeout:g} s")
        except http.client.InvalidURL as err:
            return Outcome(False, retryable=False, error=f"invalid URL: {err}")
        except ssl.SSLError as err:
            return Outcome(False, retryable=True, error=f"TLS error: {err.reason or err}")
        except (OSError, http.client.HTTPException) as err:
            return Outcome(False, retryable=True, error=_describe(err))
        if 200 <= status < 300:
            return Outcome(True, status_code=status)
        if status in (307, 308) and location:
            target = urljoin(url, location)
            if _origin(target) != _origin(url):
                return Outcome(False, status_code=status, error="redirect to another host refused")
            url = target
            continue
        if 300 <= status < 400:
            return Outcome(False, status_code=status, error=f"HTTP {status}: redirect not followed")
        retryable = status >= 500 or status in RETRYABLE_4XX
        return Outcome(False, retryable=retryable, status_code=status, error=f"HTTP {status}")
    return Outcome(False, error=f"more than {MAX_REDIRECTS} redirects")


def _post_once(
    url: str, body: bytes, headers: dict[str, str], timeout: float, allow_private: bool
) -> tuple[int, str | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise http.client.InvalidURL("not an http(s) URL with a host")
    factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = factory(parts.hostname, parts.port, timeout=timeout)
    conn._create_connection = partial(vetted_connection, allow_private=allow_private)  # type: ignore[attr-defined]
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return response.status, response.getheader("Location")
    finally:
        conn.close()


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, parts.port or default


def _describe(err: BaseException) -> str:
    """The failure without the URL: the exception's kind and the OS's words for it."""
    reason = getattr(err, "strerror", None) or str(err)
    return f"{type(err).__name__}: {reason}"[:300]


def send_mail(
    message: EmailMessage,
    *,
    host: str,
    port: int,
    starttls: bool,
    allow_plain: bool,
    username: str | None,
    password: str | None,
    timeout: float,
) -> Outcome:
    """Submit one message. STARTTLS is required unless ``allow_plain``; a 5xx reply is
    permanent, a 4xx reply or a connection failure is retried."""
    try:
        with smtplib.SMTP(host, port, timeout=timeout) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                if starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
            elif not allow_plain:
                return Outcome(False, error="server offers no STARTTLS and allow_plain is false")
            if username:
                smtp.login(username, password or "")
            refused = smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as err:
        codes = [code for code, _ in err.recipients.values()]
        retryable = all(400 <= c < 500 for c in codes)
        return Outcome(
            False, retryable=retryable, status_code=max(codes), error="recipients refused"
        )
    except smtplib.SMTPResponseException as err:
        retryable = 400 <= err.smtp_code < 500
        return Outcome(
            False, retryable=retryable, status_code=err.smtp_code, error=f"SMTP {err.smtp_code}"
        )
    except TimeoutError:
        return Outcome(False, retryable=True, error=f"timed out after {timeout:g} s")
    except (OSError, smtplib.SMTPException) as err:
        return Outcome(False, retryable=True, error=_describe(err))
    if refused:
        return Outcome(False, retryable=False, error=f"{len(refused)} recipients refused")
    return Outcome(True, status_code=250)
