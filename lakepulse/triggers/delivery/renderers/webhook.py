"""``type: webhook``: the documented JSON body, signed with the destination's secret, with the
firing id as ``Idempotency-Key`` so a receiver can drop a resent copy."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from lakepulse.triggers import transport
from lakepulse.triggers.delivery.state import iso
from lakepulse.triggers.destinations import Destination


def webhook_body(firing: Mapping[str, Any], signals: dict | None) -> bytes:
    """The documented JSON body, serialised once: the signature covers these exact bytes."""
    document = {
        "firing_id": firing["firing_id"],
        "trigger": firing["trigger"],
        "kind": firing["kind"],
        "tenant_id": firing["tenant_id"],
        "user_id": firing["user_id"],
        "fired_at": iso(firing["fired_at"]),
        "occurred_at": iso(firing.get("occurred_at")),
        "payload": json.loads(firing["payload"]) if firing.get("payload") else {},
        "signals": signals,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def sign(body: bytes, secret: str) -> str:
    """``sha256=<hex HMAC-SHA256 of the raw body>``: the X-Lakepulse-Signature header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(
    destination: Destination, firing: Mapping[str, Any], signals: dict | None, env: Mapping
) -> transport.Outcome:
    """POST the signed body."""
    body = webhook_body(firing, signals)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": transport.USER_AGENT,
        "Idempotency-Key": firing["firing_id"],
        "X-Lakepulse-Signature": sign(body, destination.resolve("secret", env)),
    }
    return transport.post(
        destination.resolve("url", env),
        body,
        headers,
        destination.timeout_seconds,
        destination.allow_private,
    )
