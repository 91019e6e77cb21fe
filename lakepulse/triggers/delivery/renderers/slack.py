"""``type: slack``: a notification in the shape of Slack's incoming webhooks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lakepulse.triggers import transport
from lakepulse.triggers.destinations import Destination


def slack_body(firing: Mapping[str, Any]) -> bytes:
    """Slack's incoming-webhook shape: ``text`` (the notification) and ``blocks``."""
    payload = json.loads(firing["payload"]) if firing.get("payload") else {}
    headline = (
        f"*{firing['trigger']}* fired for user `{firing['user_id'] or '-'}` "
        f"of tenant `{firing['tenant_id']}`"
    )
    details = ", ".join(f"{k}: {v}" for k, v in sorted(payload.items()))[:2000]
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": headline}}]
    if details:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": details}]})
    return json.dumps(
        {"text": headline.replace("*", "").replace("`", ""), "blocks": blocks}
    ).encode()


def send(
    destination: Destination, firing: Mapping[str, Any], signals: dict | None, env: Mapping
) -> transport.Outcome:
    """POST the notification (Slack shows no buyer signals: ``signals`` is not used)."""
    headers = {"Content-Type": "application/json", "User-Agent": transport.USER_AGENT}
    return transport.post(
        destination.resolve("url", env),
        slack_body(firing),
        headers,
        destination.timeout_seconds,
        destination.allow_private,
    )
