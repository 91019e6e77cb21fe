"""Dead letters: deliveries that will not be attempted again (``max_attempts`` reached, or a
4xx that means "never"), and putting them back on the retry schedule
(``lakepulse triggers retry``) once the receiver is fixed."""

from __future__ import annotations

from datetime import UTC, datetime

from lakepulse.core.settings import Settings
from lakepulse.triggers.delivery import state
from lakepulse.warehouse.trigger_tables import ensure_trigger_tables


def requeue_dead(
    settings: Settings, trigger: str | None = None, destination: str | None = None
) -> int | None:
    """Put dead letters (of one trigger, or one destination) back at the start of the retry
    schedule; returns how many, or None when a delivery pass holds the lock."""
    with state.pass_lock(settings) as locked:
        if not locked:
            return None
        ensure_trigger_tables(settings)
        dead = state.dead_letters(settings, trigger, destination)
        now = datetime.now(UTC)
        for row in dead:
            row.update(status="pending", attempts=0, next_attempt_at=None, recorded_at=now)
        if dead:
            state.append_rows(settings, dead)
        return len(dead)
