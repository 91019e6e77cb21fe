"""``type: email``: the destination's Jinja templates rendered over the webhook body's fields,
sent over SMTP."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from lakepulse.triggers import transport
from lakepulse.triggers.delivery.renderers.webhook import webhook_body
from lakepulse.triggers.destinations import Destination


def email_message(
    destination: Destination, firing: Mapping[str, Any], signals: dict | None, env: Mapping
) -> EmailMessage:
    """The rendered e-mail. Templates see the webhook body's fields (``payload`` and
    ``signals`` as mappings). The Message-ID derives from the firing, so a resent copy is
    recognisably the same message."""
    context = json.loads(webhook_body(firing, signals))
    recipients = destination.resolve("to", env)
    message = EmailMessage()
    message["From"] = destination.resolve("from", env)
    message["To"] = ", ".join(recipients) if isinstance(recipients, list) else recipients
    subject = destination.template("subject_template").render(context)
    message["Subject"] = " ".join(subject.split())
    message["Date"] = formatdate(usegmt=True)
    digest = hashlib.sha256(f"{firing['firing_id']}|{destination.name}".encode()).hexdigest()
    message["Message-ID"] = f"<{digest[:32]}@lakepulse>"
    message["X-Lakepulse-Firing-Id"] = firing["firing_id"]
    message.set_content(destination.template("body_template").render(context))
    return message


def send(
    destination: Destination, firing: Mapping[str, Any], signals: dict | None, env: Mapping
) -> transport.Outcome:
    """Render and send the message."""
    return transport.send_mail(
        email_message(destination, firing, signals, env),
        host=destination.resolve("host", env),
        port=int(destination.get("port", 587)),
        starttls=bool(destination.get("starttls", True)),
        allow_plain=bool(destination.get("allow_plain", False)),
        username=destination.resolve("username", env),
        password=destination.resolve("password", env),
        timeout=destination.timeout_seconds,
    )
