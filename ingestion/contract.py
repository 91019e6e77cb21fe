"""The bronze event contract: one Segment message in, one flat, PII-free bronze row out.

The collector calls :func:`normalize` for every message before it writes the landing log, so
the loader downstream only moves Arrow data. A message that breaks the contract raises
:class:`ContractError` with a reason an app developer can act on; the collector quarantines it
(PII-stripped) instead of dropping it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pyarrow as pa

from ingestion.privacy import (
    MAX_NESTING,
    TooDeep,
    device_class,
    json_problem,
    json_safe,
    scrub,
    strip_url,
    too_deep,
)

log = logging.getLogger("lakepulse.collector")

EVENT_TYPES = frozenset({"track", "page", "screen", "identify", "group", "alias"})
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_FUTURE_SKEW = timedelta(days=1)
"""A corrected timestamp later than this past receipt is a broken client clock: quarantined."""
MAX_ID_CHARS = 512
"""The longest id (messageId, userId, anonymousId, order_id ...) the contract accepts."""

UTM_FIELDS = ("source", "medium", "campaign", "term", "content")

# Column order and types of bronze rows as written to the landing log. Timestamps travel as
# epoch microseconds; the loader casts them. Changing this is a schema change of raw.events.
LANDING_SCHEMA = pa.schema(
    [
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("message_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        ("event", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        pa.field("timestamp", pa.int64(), nullable=False),
        ("original_timestamp", pa.int64()),
        ("sent_at", pa.int64()),
        pa.field("received_at", pa.int64(), nullable=False),
        ("page_path", pa.string()),
        ("page_url", pa.string()),
        ("page_referrer", pa.string()),
        ("page_title", pa.string()),
        ("utm_source", pa.string()),
        ("utm_medium", pa.string()),
        ("utm_campaign", pa.string()),
        ("utm_term", pa.string()),
        ("utm_content", pa.string()),
        ("device_class", pa.string()),
        ("locale", pa.string()),
        ("library", pa.string()),
        ("properties", pa.string()),
        ("traits", pa.string()),
        ("context", pa.string()),
        ("order_id", pa.string()),
        ("revenue", pa.float64()),
        ("currency", pa.string()),
        ("product_id", pa.string()),
        ("experiment_id", pa.string()),
        ("variation_id", pa.string()),
        ("group_id", pa.string()),
        ("previous_id", pa.string()),
    ]
)

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("rejection_id", pa.string(), nullable=False),
        ("message_id", pa.string()),
        pa.field("received_at", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        ("payload", pa.string()),
    ]
)


class ContractError(ValueError):
    """A message that breaks the event contract; the text is the reason shown to the sender."""


_last_micros: tuple[datetime | None, int] = (None, 0)
_last_parsed: tuple[str | None, datetime | None] = (None, None)
# One-entry memos: every event of a batch shares its received time and usually the batch's
# sentAt, so these hit for all but the first event (plain tuples: swapped atomically).


def _micros(ts: datetime) -> int:
    global _last_micros
    if ts is _last_micros[0]:
        return _last_micros[1]
    micros = int(ts.timestamp() * 1_000_000)
    _last_micros = (ts, micros)
    return micros


def parse_time(value: Any, field: str) -> datetime | None:
    """Parse an ISO 8601 timestamp (Segment's format); naive values are taken as UTC."""
    global _last_parsed
    if value is None:
        return None
    if value is _last_parsed[0]:
        return _last_parsed[1]
    if not isinstance(value, str):
        raise ContractError(f"'{field}' must be an ISO 8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ContractError(
            f"'{field}' is not a valid ISO 8601 timestamp: {value[:40]!r}"
        ) from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    _last_parsed = (value, parsed)
    return parsed


def corrected_timestamp(
    original: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """Segment's clock-skew correction: ``receivedAt - (sentAt - originalTimestamp)``."""
    if original is None:
        return received_at
    if sent_at is None:
        return original
    return received_at - (sent_at - original)


def _id(value: Any, field: str) -> str | None:
    if type(value) is str and 0 < len(value) <= MAX_ID_CHARS:  # the common case, first
        return value
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ContractError(f"'{field}' must be a string or number, got {type(value).__name__}")
    text = str(value)
    if len(text) > MAX_ID_CHARS:
        raise ContractError(f"'{field}' is longer than {MAX_ID_CHARS} characters")
    return text


def _obj(message: dict, field: str) -> dict:
    value = message.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ContractError(f"'{field}' must be an object, got {type(value).__name__}")
    return value


def _str(value: Any) -> str | None:
    if type(value) is str:
        return value
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _number(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ContractError(f"'properties.{field}' must be a number, got {type(value).__name__}")
    return float(value)


FLATTENED_CONTEXT = frozenset({"page", "campaign", "userAgent", "library", "locale", "ip"})


def _scrubbed_json(value: dict, secret: bytes, field: str) -> str:
    """The field scrubbed and serialised; nesting past ``MAX_NESTING`` breaks the contract."""
    try:
        return orjson.dumps(scrub(value, secret)).decode()
    except TooDeep:
        raise ContractError(f"'{field}' is nested deeper than {MAX_NESTING} levels") from None


def _rest_of_context(context: dict, secret: bytes) -> str | None:
    """Context fields without a column of their own, kept (scrubbed) so new SDK fields flow
    through to bronze without a schema change."""
    rest = {k: v for k, v in context.items() if k not in FLATTENED_CONTEXT}
    return _scrubbed_json(rest, secret, "context") if rest else None


def encoded_size(message: Any) -> int:
    """The message's size as JSON; a value orjson cannot write (nesting past its own limit)
    breaks the contract rather than the request."""
    try:
        return len(orjson.dumps(message))
    except orjson.JSONEncodeError:
        raise ContractError(f"event is nested deeper than {MAX_NESTING} levels") from None


def maybe_oversized(messages: list, body_bytes: int, limit: int = MAX_EVENT_BYTES) -> set[int]:
    """Indexes of the messages that may encode to more than ``limit`` bytes (or not encode at
    all); :func:`encoded_size` decides for each of them. A run of messages whose encodings add
    up to no more than ``limit`` holds none, so a batch is encoded in a few runs (sized from
    ``body_bytes``, split further when over) rather than one call a message: it is the sum
    that is bounded, never an estimate."""
    suspects: set[int] = set()
    pieces = min(len(messages), -(-2 * body_bytes // limit)) or 1
    step = -(-len(messages) // pieces)
    runs = [(start, min(start + step, len(messages))) for start in range(0, len(messages), step)]
    while runs:
        start, stop = runs.pop()
        if stop - start == 1:
            suspects.add(start)
            continue
        try:  # the sum of the encodings: the list's, less brackets and commas
            if len(orjson.dumps(messages[start:stop])) - (stop - start) - 1 <= limit:
                continue
        except orjson.JSONEncodeError:
            pass
        middle = (start + stop) // 2
        runs += [(start, middle), (middle, stop)]
    return suspects


def message_id_for(message: dict) -> str:
    """Segment SDKs always send a messageId; a hand-made call without one gets a content hash,
    so retrying the same payload still deduplicates."""
    try:
        encoded = orjson.dumps(message, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        raise ContractError(
            f"event without a messageId is nested deeper than {MAX_NESTING} levels"
        ) from None
    return "h_" + hashlib.sha256(encoded).hexdigest()[:32]


NO_REFERRER = "$direct"
"""RudderStack's browser SDK's referrer for a visit without one: no referrer in bronze."""
_EMPTY: dict = {}
_CONTAINER_TYPES = frozenset({dict, list})
_SCRUBBED_FIELDS = frozenset({"properties", "traits", "context"})
_COMMERCE_KEYS = frozenset(
    {"order_id", "revenue", "total", "currency", "product_id", "products"}
    | {"experiment_id", "variation_id"}
)
"""Properties that fill a typed column (see ``_commerce_fields``); none present: all null."""
_PAGE_PROPERTIES = ("path", "url", "referrer", "title")


def _sub(parent: dict, field: str) -> dict:
    """A nested object that is optional and ignored when it is not an object."""
    value = parent.get(field)
    return value if type(value) is dict else _EMPTY


def normalize(
    message: Any,
    *,
    tenant_id: str,
    secret: bytes,
    received_at: datetime,
    batch_context: dict | None = None,
    batch_sent_at: Any = None,
    default_type: str | None = None,
) -> dict[str, Any]:
    """Validate one message and flatten it into a bronze row (see ``LANDING_SCHEMA``).

    One named step a rule, in the order a sender learns of them: the first rule a message
    breaks is the reason it is quarantined with (``benchmarks.differential_contract`` compares
    reasons too). The steps inline their fast checks (``type(x) is str`` ...) and fall back to
    the helpers for anything else: a function call is a large part of the cost of a field.
    """
    if not isinstance(message, dict):
        raise ContractError(f"each event must be a JSON object, got {type(message).__name__}")
    kind = _event_type(message, default_type)
    user_id, anonymous_id = _user_ids(message)
    event = _event_name(message, kind)
    group_id, previous_id = _group_and_previous_ids(message, kind, user_id)
    _bound_nesting(message)
    properties, traits, context = _objects(message, kind, batch_context)
    original, sent_at, timestamp = _timestamps(message, batch_sent_at, received_at)
    message_id = _message_id(message)
    received_micros = _micros(received_at)  # memo: one received_at for the whole batch
    timestamp_micros = (
        received_micros if timestamp is received_at else int(timestamp.timestamp() * 1_000_000)
    )
    page_path, page_url, page_referrer, page_title = _page_columns(context, properties, kind)
    device, locale, library = _client_columns(context)
    row: dict[str, Any] = {
        "tenant_id": tenant_id,
        "message_id": message_id,
        "type": kind,
        "event": event,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "timestamp": timestamp_micros,
        "original_timestamp": None
        if original is None
        else timestamp_micros
        if original is timestamp
        else int(original.timestamp() * 1_000_000),
        "sent_at": None if sent_at is None else int(sent_at.timestamp() * 1_000_000),
        "received_at": received_micros,
        "page_path": page_path,
        "page_url": page_url,
        "page_referrer": page_referrer,
        "page_title": page_title,
        "utm_source": None,
        "utm_medium": None,
        "utm_campaign": None,
        "utm_term": None,
        "utm_content": None,
        "device_class": device,
        "locale": locale,
        "library": library,
        "properties": _scrubbed_json(properties, secret, "properties") if properties else None,
        "traits": _scrubbed_json(traits, secret, "traits") if traits else None,
        "context": None
        if context.keys() <= FLATTENED_CONTEXT  # the common case, tested in C
        else _rest_of_context(context, secret),
        "order_id": None,
        "revenue": None,
        "currency": None,
        "product_id": None,
        "experiment_id": None,
        "variation_id": None,
        "group_id": group_id,
        "previous_id": previous_id,
    }
    campaign = context.get("campaign")
    if type(campaign) is dict and campaign:
        for field in UTM_FIELDS:
            row[f"utm_{field}"] = _str(campaign.get(field if field != "campaign" else "name"))
    if properties and not _COMMERCE_KEYS.isdisjoint(properties):
        _commerce_fields(properties, row)
    return row


def _event_type(message: dict, default_type: str | None) -> str:
    """Rule: ``type`` is one of ``EVENT_TYPES`` (a single-event route gives its own)."""
    kind = message.get("type", default_type)
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise ContractError(
            f"'type' must be one of {', '.join(sorted(EVENT_TYPES))}; got {str(kind)[:40]!r}"
        )
    return kind


def _user_ids(message: dict) -> tuple[str | None, str | None]:
    """Rule: a ``userId`` or an ``anonymousId`` (text or a number, at most ``MAX_ID_CHARS``)."""
    user_id = message.get("userId")
    if type(user_id) is not str or not 0 < len(user_id) <= MAX_ID_CHARS:
        user_id = _id(user_id, "userId")
    anonymous_id = message.get("anonymousId")
    if type(anonymous_id) is not str or not 0 < len(anonymous_id) <= MAX_ID_CHARS:
        anonymous_id = _id(anonymous_id, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise ContractError("either 'userId' or 'anonymousId' is required")
    return user_id, anonymous_id


def _event_name(message: dict, kind: str) -> str | None:
    """Rule: a track call names its event; a page or screen call's name is kept as its event."""
    if kind == "track":
        event = message.get("event")
        if not isinstance(event, str) or not event.strip():
            raise ContractError("'event' (a non-empty string) is required for track calls")
        return event
    if kind == "page" or kind == "screen":
        return _str(message.get("name"))
    return None


def _group_and_previous_ids(
    message: dict, kind: str, user_id: str | None
) -> tuple[str | None, str | None]:
    """Rules: a group call has a ``groupId``; an alias call a ``previousId`` and a ``userId``."""
    group_id = message.get("groupId")
    if group_id is not None:
        group_id = _id(group_id, "groupId")
    if kind == "group" and group_id is None:
        raise ContractError("'groupId' is required for group calls")
    previous_id = message.get("previousId")
    if previous_id is not None:
        previous_id = _id(previous_id, "previousId")
    if kind == "alias" and (previous_id is None or user_id is None):
        raise ContractError("'previousId' and 'userId' are required for alias calls")
    return group_id, previous_id


def _bound_nesting(message: dict) -> None:
    """Rule: no field nests deeper than ``MAX_NESTING`` (the scrubbed ones are bounded when
    they are scrubbed; this covers the fields dropped without a walk)."""
    for key, value in message.items():
        if type(value) in _CONTAINER_TYPES and key not in _SCRUBBED_FIELDS and too_deep(value):
            raise ContractError(f"'{key}' is nested deeper than {MAX_NESTING} levels")


def _objects(message: dict, kind: str, batch_context: dict | None) -> tuple[dict, dict, dict]:
    """Rule: ``properties``, ``traits`` and ``context`` are objects when present. An event
    without a context takes the batch's; an identify call without traits takes the context's
    (where RudderStack's browser SDK puts them)."""
    properties = message.get("properties")
    if type(properties) is not dict:
        properties = _obj(message, "properties")
    traits = message.get("traits")
    if type(traits) is not dict:
        traits = _obj(message, "traits")
    context = message.get("context")
    if type(context) is not dict:
        context = _obj(message, "context")
    if not context:
        context = batch_context or _EMPTY
        if not isinstance(context, dict):
            raise ContractError("'context' must be an object")
    if not traits and kind == "identify":
        traits = _sub(context, "traits")
    return properties, traits, context


def _timestamps(
    message: dict, batch_sent_at: Any, received_at: datetime
) -> tuple[datetime | None, datetime | None, datetime]:
    """Rules: timestamps are ISO 8601; the corrected one (``corrected_timestamp``) is at most
    ``MAX_FUTURE_SKEW`` after receipt. Returns the original, ``sentAt`` and the corrected."""
    original = parse_time(message.get("originalTimestamp") or message.get("timestamp"), "timestamp")
    sent_at = message.get("sentAt", batch_sent_at)
    if sent_at is not None:
        sent_at = parse_time(sent_at, "sentAt")
    if original is None or sent_at is None:
        timestamp = original or received_at
    else:
        timestamp = corrected_timestamp(original, sent_at, received_at)
    if timestamp - received_at > MAX_FUTURE_SKEW:
        raise ContractError(
            f"timestamp {timestamp.isoformat()} is more than a day after it was received"
        )
    return original, sent_at, timestamp


def _message_id(message: dict) -> str:
    """Rule: a ``messageId`` is text or a number of at most ``MAX_ID_CHARS``; without one, the
    message's content hash (:func:`message_id_for`)."""
    message_id = message.get("messageId")
    if type(message_id) is not str or not 0 < len(message_id) <= MAX_ID_CHARS:
        message_id = _id(message_id, "messageId") or message_id_for(message)
    return message_id


def _page_columns(
    context: dict, properties: dict, kind: str
) -> tuple[str | None, str | None, str | None, str | None]:
    """Path, URL, referrer and title from ``context.page`` (a page call's properties win),
    the URLs stripped of PII query parameters (``privacy.strip_url``)."""
    page = context.get("page")
    if type(page) is not dict:
        page = _EMPTY
    if kind == "page" and properties:
        page = {**page, **{k: properties[k] for k in _PAGE_PROPERTIES if k in properties}}
    url, referrer = page.get("url"), page.get("referrer")
    page_path, page_title = page.get("path"), page.get("title")
    if page_path is not None and type(page_path) is not str:
        page_path = _str(page_path)
    if page_title is not None and type(page_title) is not str:
        page_title = _str(page_title)
    return (
        page_path,
        strip_url(url) if isinstance(url, str) else None,
        strip_url(referrer) if isinstance(referrer, str) and referrer != NO_REFERRER else None,
        page_title,
    )


def _client_columns(context: dict) -> tuple[str, str | None, str | None]:
    """The device class (never the user agent itself), locale and library name."""
    user_agent, locale = context.get("userAgent"), context.get("locale")
    if user_agent is not None and type(user_agent) is not str:
        user_agent = _str(user_agent)
    if locale is not None and type(locale) is not str:
        locale = _str(locale)
    device, library = context.get("device"), context.get("library")
    device_type = _str(device.get("type")) if type(device) is dict else None
    library_name = library.get("name") if type(library) is dict else None
    if library_name is not None and type(library_name) is not str:
        library_name = _str(library_name)
    return device_class(user_agent, device_type), locale, library_name


def _commerce_fields(properties: dict, row: dict[str, Any]) -> None:
    """The Segment e-commerce and experiment properties that have columns of their own
    (absent ones, the usual case, skip the helpers)."""
    get = properties.get
    if (order_id := get("order_id")) is not None:
        row["order_id"] = _id(order_id, "properties.order_id")
    revenue = get("revenue", get("total"))
    if revenue is not None:
        revenue = _number(revenue, "revenue")
        if revenue < 0:
            raise ContractError("'properties.revenue' must not be negative")
        row["revenue"] = revenue
    if (currency := get("currency")) is not None:
        row["currency"] = _str(currency)
    product_id = get("product_id")
    if product_id is None:
        products = get("products")
        if isinstance(products, list) and products and isinstance(products[0], dict):
            product_id = products[0].get("product_id")
    if product_id is not None:
        row["product_id"] = _id(product_id, "product_id")
    if (experiment_id := get("experiment_id")) is not None:
        row["experiment_id"] = _id(experiment_id, "properties.experiment_id")
    if (variation_id := get("variation_id")) is not None:
        row["variation_id"] = _id(variation_id, "properties.variation_id")


def rejection(
    *, tenant_id: str, secret: bytes, received_at: datetime, payload: Any, reason: str, index: int
) -> dict[str, Any]:
    """A quarantine row: the reason and the PII-scrubbed original payload (made storable first:
    whatever a rejected event holds, quarantining it cannot fail)."""
    message_id = _str(payload.get("messageId")) if isinstance(payload, dict) else None
    body = orjson.dumps(scrub(json_safe(payload), secret), option=orjson.OPT_SORT_KEYS)
    return {
        "tenant_id": tenant_id,
        "rejection_id": hashlib.sha256(
            f"{tenant_id}|{message_id}|{_micros(received_at)}|{index}".encode() + body
        ).hexdigest()[:32],
        "message_id": message_id,
        "received_at": _micros(received_at),
        "reason": reason,
        "payload": body.decode()[:MAX_EVENT_BYTES],
    }


# The compiled pass ---------------------------------------------------------------------------
# msgspec decodes and validates a request's envelope and each event into typed structs in C, and
# encodes the landing rows; the Python left per event is the rules' decisions, not a walk of
# every value. It accepts an event only when the rows it writes are the interpreted contract's
# (``normalize``) by construction; anything else (a type it does not expect, a rule it would
# break, a field it does not know) is handed to the interpreted contract, event by event, which
# decides as it always has. ``benchmarks.differential_contract`` checks the two agree.


class _Envelope(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A ``/v1/batch`` body. Fields outside these send the whole request to the interpreted
    contract: msgspec skips an undeclared field without checking it as strictly as orjson."""

    batch: list[msgspec.Raw]
    context: Any = None
    sentAt: Any = None
    writeKey: Any = None
    timestamp: Any = None
    integrations: Any = None
    metadata: Any = msgspec.field(default=None, name="_metadata")


class _SingleEnvelope(msgspec.Struct, gc=False):
    """What a single-event body (``/v1/track``, ``/v1/t`` ...) says about the request; the event
    itself is decoded (and checked whole) by ``_Event``."""

    context: Any = None
    sentAt: Any = None
    writeKey: Any = None


class _Page(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """``context.page``: the fields with columns, and ``search`` (analytics.js's; dropped).
    Fields in the order SDKs send them (analytics.js's): msgspec looks a key up from the field
    after the last one found, so a body in this order finds each at the first try."""

    path: Any = None
    referrer: Any = None
    search: Any = None
    title: Any = None
    url: Any = None


class _Library(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: Any = None
    version: Any = None


class _Context(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A context holding only fields that have columns (``FLATTENED_CONTEXT``), decoded
    without a dict; any other field (kept in bronze's ``context``, scrubbed) and it is decoded
    as a dict instead. Fields in the order SDKs commonly send them (see ``_Page``)."""

    userAgent: Any = None
    locale: Any = None
    library: _Library | None = None
    ip: Any = None
    campaign: dict[str, Any] | None = None
    page: _Page | None = None


class _Event(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One Segment message in the shape the compiled pass takes: a field of another type, or
    one not declared here, sends the event to the interpreted contract. Every declared field is
    decoded (so checked) even when its value is dropped. Fields in the order SDKs commonly send
    them (see ``_Page``)."""

    type: str | msgspec.UnsetType = msgspec.UNSET
    messageId: str | None = None
    anonymousId: str | None = None
    timestamp: Any = None
    context: _Context | None = None
    event: str | None = None
    name: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    userId: str | None = None
    groupId: str | None = None
    previousId: str | None = None
    originalTimestamp: Any = None
    sentAt: Any = msgspec.UNSET
    integrations: Any = None
    writeKey: Any = None
    channel: Any = None
    version: Any = None
    receivedAt: Any = None
    metadata: Any = msgspec.field(default=None, name="_metadata")


class _EventWithContext(_Event, forbid_unknown_fields=True, gc=False):
    """``_Event`` for an event whose context has fields without columns of their own."""

    context: dict[str, Any] | None = None


class _DecodedEnvelope(_Envelope, forbid_unknown_fields=True, gc=False):
    """``_Envelope`` with its events decoded in the same pass (``decode_batch``): one walk of
    the body, not one to find each event's bytes and another to decode them."""

    batch: list[_Event]


LandingRow = msgspec.defstruct(
    "LandingRow",
    [(name, Any, None) for name in LANDING_SCHEMA.names],
    gc=False,
    omit_defaults=True,
    module=__name__,
)
"""A bronze row as the compiled pass builds it: ``LANDING_SCHEMA``'s columns, in its order
(``msgspec.structs.asdict`` gives the dict ``normalize`` returns). Its landing line leaves
out the null columns (a third of the bytes): the loader reads a missing column as null."""

_ENVELOPE = msgspec.json.Decoder(_Envelope)
_DECODED_ENVELOPE = msgspec.json.Decoder(_DecodedEnvelope)
_SINGLE = msgspec.json.Decoder(_SingleEnvelope)
_EVENT = msgspec.json.Decoder(_Event)
_EVENT_WITH_CONTEXT = msgspec.json.Decoder(_EventWithContext)
SIZE_FACTOR = 5
"""orjson re-encodes an event in at most this many times its bytes (a number such as ``1e15``
grows to ``1000000000000000.0``); an event whose bytes times this fit ``MAX_EVENT_BYTES``
cannot be oversized, and a larger one is sized by the interpreted contract."""
_NO_PAGE = (None, None, None, None)


class NotCompiled(Exception):
    """A request (or event) the compiled pass leaves to the interpreted contract."""


@dataclasses.dataclass(slots=True)
class Request:
    """A request body after the compiled decode: its events still as bytes, one slice each."""

    events: list[Any]
    context: dict | None
    sent_at: Any
    write_key: Any


def decode_request(raw: bytes, batched: bool) -> Request | None:
    """The request's envelope, decoded by msgspec; None sends it to the interpreted path
    (``wire.parse_json``): not an object, lenient JSON, invalid UTF-8, an unknown field."""
    if not raw.isascii():
        try:
            raw.decode()
        except UnicodeDecodeError:
            return None
    try:
        envelope = (_ENVELOPE if batched else _SINGLE).decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    context = envelope.context if type(envelope.context) is dict else None
    events = envelope.batch if batched else [raw]
    return Request(events, context, envelope.sentAt, envelope.writeKey)


def decode_batch(raw: bytes) -> Request | None:
    """A ``/v1/batch`` body decoded in one pass, its events as ``_Event`` structs (for
    ``check_events(decoded=True)``); None when an event does not fit ``_Event`` (a context
    with fields of its own, a field of another type ...) or the body is not one
    ``decode_request`` reads: the caller then reads it with ``decode_request``. Invalid UTF-8
    needs no check of its own here, unlike ``decode_request``'s (whose events are skipped as
    ``msgspec.Raw``): every value is decoded (text by Python's strict UTF-8 decoder, which
    raises ``UnicodeDecodeError``), every struct forbids a key it does not declare, and
    outside text JSON allows no such byte."""
    try:
        envelope = _DECODED_ENVELOPE.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    context = envelope.context if type(envelope.context) is dict else None
    return Request(envelope.batch, context, envelope.sentAt, envelope.writeKey)


_EMPTY_CONTEXT = _Context()
_EVENT_FIELDS = _Event.__struct_fields__
"""The order ``rowpass.event_row`` unpacks an event's fields in (``_EventWithContext``'s too)."""
assert _EventWithContext.__struct_fields__ == _EVENT_FIELDS
_CONTEXT_FIELDS = _Context.__struct_fields__
_PAGE_FIELDS = _Page.__struct_fields__


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_YEAR_2201 = datetime(2201, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclasses.dataclass(slots=True)
class Batch:
    """What every event of one request shares, for :func:`compiled_row`."""

    tenant_id: str
    secret: bytes
    received_at: datetime
    batch_context: dict | None = None
    batch_sent_at: Any = None
    default_type: str | None = None
    body_bytes: int = 0
    received_micros: int = 0
    context_parts: tuple | None = None
    """``_dict_context`` of the batch's context (for events without one), made once."""
    latest: datetime | None = None
    """The latest timestamp an event may have: ``received_at`` + ``MAX_FUTURE_SKEW``."""
    shared: tuple = ()
    """What ``rowpass.event_row`` reads for every event, in one tuple: one lookup, not six."""
    received_exact: int = -1
    """``received_at`` in exact epoch microseconds (no float), for ``rowpass``'s integer
    timestamps; -1 (those off) unless it is an aware time in the years 1970 to 2200."""
    latest_exact: int = -1
    """``latest`` the same way."""

    def __post_init__(self) -> None:
        self.received_micros = _micros(self.received_at)
        try:
            self.latest = self.received_at + MAX_FUTURE_SKEW
        except OverflowError:  # received past year 9998: no event is in its future
            self.latest = datetime.max.replace(tzinfo=UTC)
        if self.received_at.tzinfo is not None and _EPOCH <= self.received_at < _YEAR_2201:
            self.received_exact = (self.received_at - _EPOCH) // _MICROSECOND
            self.latest_exact = (self.latest - _EPOCH) // _MICROSECOND
        self.shared = (
            self.tenant_id,
            self.secret,
            self.received_at,
            self.received_micros,
            self.latest,
            self.batch_sent_at,
            self.body_bytes,
            self.received_exact,
            self.latest_exact,
        )


def compiled_row(data: Any, batch: Batch) -> Any:
    """The bronze row (a ``LandingRow``) of one event's bytes, as ``normalize`` would make it;
    raises :class:`NotCompiled` for an event it leaves to ``normalize`` (which then decides,
    accepting or rejecting it)."""
    try:
        return row_pass().event_row(data, batch)
    except NotCompiled:
        raise
    except Exception:  # a rule that rejects, an int past 64 bits, a date out of range ...
        raise NotCompiled from None


_ROW_PASS: Any = None


def row_pass() -> Any:
    """The module that runs the compiled pass's per-event work: the C extension
    ``ingestion._rowpass`` (``setup.py`` builds it from ``ingestion/rowpass.py`` on install)
    when it was built from the ``rowpass.py`` here, else ``ingestion.rowpass`` itself, the
    same code interpreted (slower; a warning says why)."""
    global _ROW_PASS
    if _ROW_PASS is None:
        _ROW_PASS = _load_row_pass()
    return _ROW_PASS


def compiled_pass_in_use() -> bool:
    """Whether the per-event work runs in the C extension (``/metrics``' ``compiled_row_pass``):
    False when it runs interpreted, the extension missing or built from another source."""
    return bool(row_pass().SOURCE_SHA256)


def _load_row_pass() -> Any:
    from ingestion import rowpass

    source = Path(rowpass.__file__)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    declarations = source.with_suffix(".pxd")  # absent from an installed wheel: not compared
    declared = (
        hashlib.sha256(declarations.read_bytes()).hexdigest() if declarations.exists() else None
    )
    try:
        from ingestion import _rowpass  # type: ignore[attr-defined]
    except ImportError as err:
        log.warning(
            "ingestion._rowpass is not built (%s): the per-event work runs in the "
            "interpreter; `make install` (pip install -e .) builds it",
            err,
        )
        return rowpass
    stale = digest != _rowpass.SOURCE_SHA256 or (
        declared is not None and declared != getattr(_rowpass, "DECLARATIONS_SHA256", "")
    )
    if stale:
        log.warning(
            "ingestion._rowpass was built from another rowpass.py (or rowpass.pxd): the "
            "per-event work runs in the interpreter until `make install` (pip install -e .) "
            "rebuilds it"
        )
        return rowpass
    return _rowpass


@dataclasses.dataclass(slots=True)
class Checked:
    """A request's events after the contract: bronze rows, quarantine rows, the sender's
    report of the rejected ones, and how many took the compiled pass."""

    good: list = dataclasses.field(default_factory=list)
    bad: list = dataclasses.field(default_factory=list)
    report: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    compiled: int = 0
    unexpected: int = 0
    """Events whose validation raised something else than a ContractError (a bug)."""


def check_events(
    events: list[Any],
    *,
    tenant_id: str,
    secret: bytes,
    received_at: datetime,
    batch_context: dict | None,
    batch_sent_at: Any,
    default_type: str | None,
    body_bytes: int,
    compiled: bool,
    lenient: bool = False,
    decoded: bool = False,
) -> Checked:
    """Every event of a request through the contract, in order.

    ``compiled``: ``events`` are each event's bytes (a ``Request``'s), tried with
    :func:`compiled_row` first and otherwise read with orjson and interpreted; raises
    :class:`NotCompiled` if orjson refuses one (the whole request then goes the interpreted
    way, which answers it as it always has). Otherwise ``events`` are parsed messages
    (``lenient``: read by the stdlib parser, each checked with ``json_problem``).
    ``decoded``: ``events`` are ``decode_batch``'s structs, every one compiled, else
    :class:`NotCompiled` (the caller reads the body again with ``decode_request``)."""
    out = Checked()
    if compiled:
        batch = Batch(
            tenant_id, secret, received_at, batch_context, batch_sent_at, default_type, body_bytes
        )
        if decoded:
            out.good = row_pass().decoded_rows(events, batch)
            out.compiled = len(events)
            return out
        out.good, messages, pending = row_pass().rows(events, batch)
        out.compiled = len(events) - len(pending)
        if not pending:
            return out
        # Each is sized on its own: its bytes may be a small part of the body.
        oversized = set(pending) if body_bytes > MAX_EVENT_BYTES else set()
    else:
        messages, pending = events, list(range(len(events)))
        # No event can be larger than its body, nor than a run of events it is in.
        oversized = maybe_oversized(events, body_bytes) if body_bytes > MAX_EVENT_BYTES else set()
    rows: dict[int, Any] = {}
    for index, message in zip(pending, messages, strict=True):
        try:
            if lenient and (problem := json_problem(message)):
                raise ContractError(problem)
            if index in oversized and encoded_size(message) > MAX_EVENT_BYTES:
                raise ContractError(f"event exceeds {MAX_EVENT_BYTES} bytes")
            rows[index] = normalize(
                message,
                tenant_id=tenant_id,
                secret=secret,
                received_at=received_at,
                batch_context=batch_context,
                batch_sent_at=batch_sent_at,
                default_type=default_type,
            )
        except Exception as err:  # a ContractError, or a bug: quarantine, never a 5xx
            if not isinstance(err, ContractError):
                log.exception("unexpected error validating event %d", index)
                out.unexpected += 1
                err = ContractError(f"event could not be processed ({type(err).__name__})")
            out.bad.append(
                rejection(
                    tenant_id=tenant_id,
                    secret=secret,
                    received_at=received_at,
                    payload=message,
                    reason=str(err),
                    index=index,
                )
            )
            out.report.append(
                {"index": index, "messageId": out.bad[-1]["message_id"], "reason": str(err)}
            )
    if compiled:  # interpreted rows take their events' places (the loader keeps the last copy)
        out.good = [
            row
            for row in (rows.get(i) if row is None else row for i, row in enumerate(out.good))
            if row is not None
        ]
    else:
        out.good = [rows[i] for i in pending if i in rows]
    return out
