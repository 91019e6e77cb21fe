"""One renderer per destination type, found by the type's name (as dlt keeps one module per
destination): each module turns a firing into its message and sends it through
:mod:`lakepulse.triggers.transport`. A new destination type is a module here and a line in
:data:`RENDERERS` (its fields and their validation in :mod:`lakepulse.triggers.destinations`);
the pass, the state and the retries need no change."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lakepulse.triggers import transport
from lakepulse.triggers.delivery.renderers import email, slack, webhook
from lakepulse.triggers.destinations import Destination, UnresolvedSecret

Renderer = Callable[[Destination, Mapping[str, Any], dict | None, Mapping], transport.Outcome]
"""``(destination, firing, buyer signals or None, environment) -> outcome`` of one attempt."""

RENDERERS: dict[str, Renderer] = {
    "webhook": webhook.send,
    "slack": slack.send,
    "email": email.send,
}
"""Destination type -> how one firing is sent to it."""


def attempt(
    destination: Destination, firing: Mapping[str, Any], signals: dict | None, env: Mapping
) -> transport.Outcome:
    """One delivery attempt of one firing to one destination. An unset ``${NAME}`` is retried
    (the variable may be set by then); any other error (a template's, say) is a dead letter
    that names it."""
    try:
        return RENDERERS[destination.type](destination, firing, signals, env)
    except UnresolvedSecret as err:
        return transport.Outcome(False, retryable=True, error=str(err))
    except Exception as err:
        return transport.Outcome(False, retryable=False, error=f"{type(err).__name__}: {err}"[:300])


__all__ = ["RENDERERS", "Renderer", "attempt"]
