"""Delivering trigger firings: at least once per treatment firing and destination, with
retries on a schedule and dead letters, resumable after any crash.

One concern per module:

- :mod:`.state`: the state table ``lake/triggers/deliveries`` (Delta, append-only, one row
  per state change of a (firing, destination); a delivery's current state is its latest row)
  and the queries over it;
- :mod:`.renderers`: one module per destination type (``webhook``, ``slack``, ``email``), found
  by the type's name in a registry;
- :mod:`.delivery_pass`: one pass, its retry schedule and its single writer;
- :mod:`.dead_letters`: re-queueing what will not be attempted again.

Crash safety: a row is written only after its attempt, so a deliverer killed mid-batch
(SIGKILL included) has lost nothing: the firings it had sent but not recorded are sent again
by the next pass, with the same ``Idempotency-Key`` (and the same e-mail ``Message-ID``), which
is what makes at-least-once harmless for a receiver that deduplicates.

The names callers use are re-exported here.
"""

from lakepulse.triggers.delivery.dead_letters import requeue_dead
from lakepulse.triggers.delivery.delivery_pass import (
    PassResult,
    deliver_pass,
    retry_delay,
    triggers_file,
)
from lakepulse.triggers.delivery.renderers import RENDERERS, attempt
from lakepulse.triggers.delivery.renderers.email import email_message
from lakepulse.triggers.delivery.renderers.slack import slack_body
from lakepulse.triggers.delivery.renderers.webhook import sign, webhook_body
from lakepulse.triggers.destinations import DestinationError
from lakepulse.warehouse.trigger_tables import (
    DELIVERIES_SCHEMA,
    FIRINGS_SCHEMA,
    ensure_trigger_tables,
)

__all__ = [
    "DELIVERIES_SCHEMA",
    "FIRINGS_SCHEMA",
    "RENDERERS",
    "DestinationError",
    "PassResult",
    "attempt",
    "deliver_pass",
    "email_message",
    "ensure_trigger_tables",
    "requeue_dead",
    "retry_delay",
    "sign",
    "slack_body",
    "triggers_file",
    "webhook_body",
]
