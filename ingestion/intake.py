"""The one way events enter the lake: :func:`accept` puts a submission through the contract
(the compiled pass, and the interpreted contract for what it declines) with its privacy
rules, and :func:`land` writes the rows accepted and quarantined durably to the landing log.

The collector calls both for every request (``land`` from its group commit, for many requests
at once); :func:`write_back` does the same for the events the lake sends itself (trigger
firings), so a bronze row is made one way whoever sends its event.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ingestion.contract import Checked, NotCompiled, check_events, decode_batch, decode_request
from ingestion.landing import LandingLog, encode_rows
from ingestion.tenants import Tenant, TenantRegistry
from ingestion.wire import HttpError, parse_json
from lakepulse.core.settings import Settings


@dataclasses.dataclass(slots=True)
class Submission:
    """Events as they arrive, before the contract, with what their batch says around them."""

    events: Any
    """Each event's bytes (``compiled``), else the parsed ``batch`` (checked by :func:`accept`:
    a tenant's write key is looked at before whether its batch is a list)."""
    compiled: bool
    context: dict | None = None
    sent_at: Any = None
    write_key: Any = None
    default_type: str | None = None
    """A single-event route's type (``/v1/track`` ...), for an event that names none."""
    body: bytes = b""
    """The request's bytes: read again the interpreted way if orjson refuses an event."""
    batched: bool = True
    lenient: bool = False
    """Read by the stdlib parser (``NaN``, lone surrogates ...): each event checked for them."""
    decoded: bool = False
    """``events`` are ``contract.decode_batch``'s structs (a batch decoded in one pass)."""

    @classmethod
    def of_messages(cls, messages: list[dict]) -> Submission:
        """Messages made in process (no request body: no size to check)."""
        return cls(messages, compiled=False)


def read_request(
    raw: bytes, batched: bool, default_type: str | None = None, one_pass: bool = True
) -> Submission:
    """A request body as a :class:`Submission`: msgspec's decode (the compiled pass) when it
    reads it (a batch's events decoded with it in one pass if they all fit, ``one_pass``),
    else the interpreted parse (``wire.parse_json``), whose client errors (400, as
    :class:`HttpError`) are the request's."""
    request = decode_batch(raw) if batched and one_pass else None
    decoded = request is not None
    if request is None:
        request = decode_request(raw, batched)
    if request is None:
        return _interpreted(raw, batched, default_type)
    return Submission(
        request.events,
        compiled=True,
        context=request.context,
        sent_at=request.sent_at,
        write_key=request.write_key,
        default_type=default_type,
        body=raw,
        batched=batched,
        decoded=decoded,
    )


def _interpreted(raw: bytes, batched: bool, default_type: str | None) -> Submission:
    body, lenient = parse_json(raw)
    if not isinstance(body, dict):
        raise HttpError(400, "invalid_body", "body must be a JSON object")
    context = body.get("context")
    return Submission(
        body.get("batch") if batched else [body],
        compiled=False,
        context=context if isinstance(context, dict) else None,
        sent_at=body.get("sentAt"),
        write_key=body.get("writeKey"),
        default_type=default_type,
        body=raw,
        batched=batched,
        lenient=lenient,
    )


def accept(submission: Submission, tenant: Tenant, received_at: datetime) -> Checked:
    """Every event of ``submission`` through the contract, in order: bronze rows, quarantine
    rows (PII-scrubbed) and the sender's report. A compiled submission with an event orjson
    refuses is read again and checked the interpreted way, whole, as it always was."""
    if submission.compiled and submission.decoded:
        try:
            return _check(submission, tenant, received_at)
        except NotCompiled:  # an event decoded in one pass declined: each event's bytes
            raw, batched, default_type = (
                submission.body,
                submission.batched,
                submission.default_type,
            )
            submission = read_request(raw, batched, default_type, one_pass=False)
    if submission.compiled:
        try:
            return _check(submission, tenant, received_at)
        except NotCompiled:
            submission = _interpreted(submission.body, submission.batched, submission.default_type)
    if not isinstance(submission.events, list):
        raise HttpError(400, "invalid_batch", "'batch' must be an array of events")
    return _check(submission, tenant, received_at)


def _check(submission: Submission, tenant: Tenant, received_at: datetime) -> Checked:
    return check_events(
        submission.events,
        tenant_id=tenant.tenant_id,
        secret=tenant.secret,
        received_at=received_at,
        batch_context=submission.context,
        batch_sent_at=submission.sent_at,
        default_type=submission.default_type,
        body_bytes=len(submission.body),
        compiled=submission.compiled,
        lenient=submission.lenient,
        decoded=submission.decoded,
    )


Encoded = tuple[str, bytes, int, bytes, int]
"""A request's rows as landing lines (:func:`encode`): its tenant, its bronze rows' lines and
their count, its quarantine rows' lines and their count."""


def encode(tenant_id: str, good: list, bad: list) -> Encoded:
    """A request's bronze and quarantine rows as landing lines, ready for :func:`land_encoded`
    (the collector encodes each request's on the event loop, so its write round holds the
    interpreter only between system calls)."""
    return (
        tenant_id,
        encode_rows(good) if good else b"",
        len(good),
        encode_rows(bad) if bad else b"",
        len(bad),
    )


def land(landing: LandingLog, items: Iterable[tuple[str, list, list]]) -> Counter[str]:
    """One durable file per tenant and kind for all of ``items`` (tenant, bronze rows,
    quarantine rows), in their order; the rows stored and quarantined, counted."""
    return land_encoded(landing, [encode(tenant_id, good, bad) for tenant_id, good, bad in items])


def land_encoded(landing: LandingLog, items: Iterable[Encoded]) -> Counter[str]:
    """:func:`land` for rows :func:`encode` made: each file's lines written as they were
    encoded, one request's after another (one ``writev``)."""
    by_key: dict[tuple[str, str], tuple[list[bytes], list[int]]] = {}
    for tenant_id, events, stored, rejected, quarantined in items:
        for kind, body, count in (("events", events, stored), ("rejected", rejected, quarantined)):
            bodies, counts = by_key.setdefault((tenant_id, kind), ([], []))
            if count:
                bodies.append(body)
                counts.append(count)
    landed: Counter[str] = Counter()
    for (tenant_id, kind), (bodies, counts) in by_key.items():
        if bodies:
            landing.write_encoded(tenant_id, kind, bodies)
            landed["events_stored" if kind == "events" else "events_quarantined"] += sum(counts)
    return landed


def write_back(settings: Settings, messages: Iterable[tuple[str, dict, datetime]]) -> Counter[str]:
    """Events the lake sends itself, each a (tenant, Segment message, time received), through
    :func:`accept` and :func:`land` as a request's are: the same rows, one file per tenant. A
    tenant missing from the registry (removed since) hashes with an empty secret."""
    registry = TenantRegistry(settings.tenants_file)
    items = []
    for tenant_id, message, received_at in messages:
        tenant = registry.get(tenant_id) or Tenant(tenant_id, b"")
        checked = accept(Submission.of_messages([message]), tenant, received_at)
        items.append((tenant_id, checked.good, checked.bad))
    return land(LandingLog(settings.landing_dir), items)
