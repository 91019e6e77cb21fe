"""The compiled pass's per-event work: one event's bytes to its bronze row, and the loop over a
request's events (``contract.check_events`` calls :func:`rows`).

This module is plain Python, and also the source of the C extension ``ingestion._rowpass``:
``setup.py`` compiles a copy of it with Cython when the project is installed (``make``, ``pip
install -e .``), with the C types and C functions ``rowpass.pxd`` declares for it (which change
how fast the code runs, never what it computes), and :func:`ingestion.contract.row_pass` uses
the extension when it was built from this very source and those declarations (its
``SOURCE_SHA256`` and ``DECLARATIONS_SHA256``), this module otherwise. The same tests run both
(``tests/unit/test_compiled_contract.py``); ``benchmarks.differential_contract`` compares the
one in use with ``main``. Keep it free of classes (those are ``contract``'s: one identity for
``LandingRow``, ``NotCompiled`` ... whichever module runs) and of module state other than
constants.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from ingestion.contract import (
    _COMMERCE_KEYS,
    _CONTEXT_FIELDS,
    _EMPTY,
    _EMPTY_CONTEXT,
    _EVENT,
    _EVENT_FIELDS,
    _EVENT_WITH_CONTEXT,
    _NO_PAGE,
    _PAGE_FIELDS,
    EVENT_TYPES,
    FLATTENED_CONTEXT,
    MAX_EVENT_BYTES,
    MAX_ID_CHARS,
    NO_REFERRER,
    SIZE_FACTOR,
    Batch,
    LandingRow,
    NotCompiled,
    _Context,
    _Library,
    _Page,
    _scrubbed_json,
    _sub,
    parse_time,
)
from ingestion.privacy import (
    _DEVICE_CLASSES,
    _HMAC_PADS,
    _MAX_MEMO,
    _MAX_MEMO_CHARS,
    _MAX_SAFE_KEYS,
    _SAFE_KEYS,
    _STRIPPED_URLS,
    MAX_NESTING,
    _rule,
    device_class,
    hash_pii,
    hmac_pads,
    scrub,
    strip_url,
    too_deep,
)

SOURCE_SHA256 = ""
"""In the extension, the SHA-256 of the source it was compiled from (``setup.py`` sets it)."""
DECLARATIONS_SHA256 = ""
"""In the extension, the SHA-256 of the ``rowpass.pxd`` it was compiled with (C types and C
functions for this module's code; ``setup.py`` sets it)."""
_INTEGER_TIMES = bool(SOURCE_SHA256)
"""Times read by :func:`_iso_micros` in the extension only: a character at a time is C's
work; interpreted, ``datetime``'s parse (C too) is the faster, and the columns are the same."""

_UNSET = msgspec.UNSET
_astuple = msgspec.structs.astuple
_dumps = orjson.dumps
_fromisoformat = datetime.fromisoformat
_DecodeError = msgspec.DecodeError
_decode_event = _EVENT.decode  # bound once: no method lookup an event
_decode_event_with_context = _EVENT_WITH_CONTEXT.decode
_NO_UTM = (None, None, None, None, None)
_NO_COMMERCE = (None, None, None, None, None, None)
_KINDS = {kind: kind for kind in EVENT_TYPES}
"""Each event type to itself: an event's type is read as this text, so its tests below are
identity tests (``is``), not comparisons of text."""
_TRACK, _PAGE, _SCREEN = _KINDS["track"], _KINDS["page"], _KINDS["screen"]
_IDENTIFY, _GROUP, _ALIAS = _KINDS["identify"], _KINDS["group"], _KINDS["alias"]
if _EVENT_FIELDS != (
    "type", "messageId", "anonymousId", "timestamp", "context", "event", "name", "properties",
    "traits", "userId", "groupId", "previousId", "originalTimestamp", "sentAt",
    "integrations", "writeKey", "channel", "version", "receivedAt", "metadata",
):  # fmt: skip
    raise ImportError("contract._Event's fields moved: update rowpass.event_row's unpacking")
if (
    _CONTEXT_FIELDS != ("userAgent", "locale", "library", "ip", "campaign", "page")
    or _PAGE_FIELDS != ("path", "referrer", "search", "title", "url")
    or _Library.__struct_fields__ != ("name", "version")
):
    raise ImportError("contract._Context's or _Page's fields moved: update rowpass.event_row")


def rows(events: list[Any], batch: Batch) -> tuple[list[Any], list[Any], list[int]]:
    """Each event's bytes through :func:`event_row`: the rows in the events' order (None where an
    event was declined), and the declined ones read by orjson with their indexes, for
    ``normalize``. Raises :class:`NotCompiled` if orjson refuses one (the whole request then
    goes the interpreted way)."""
    good: list[Any] = []
    messages: list[Any] = []
    pending: list[int] = []
    index = 0
    for data in events:
        try:
            good.append(event_row(data, batch))
            index += 1
            continue
        except Exception:  # declined, or an error (a date out of range): interpreted
            good.append(None)
        try:
            message = orjson.loads(memoryview(data))  # a msgspec.Raw: its bytes
        except orjson.JSONDecodeError:
            raise NotCompiled from None
        messages.append(message)
        pending.append(index)
        index += 1
    return good, messages, pending


def decoded_rows(events: list[Any], batch: Batch) -> list[Any]:
    """The rows of a request's events decoded in one pass with its envelope (``_Event`` structs,
    ``contract.decode_batch``), in order; :class:`NotCompiled` if any is declined (the caller
    then reads the request again, each event's bytes through :func:`rows`)."""
    good: list[Any] = []
    bounded = batch.body_bytes > MAX_EVENT_BYTES
    for message in events:
        try:
            good.append(_message_row(message, batch, False, bounded))
        except Exception:
            raise NotCompiled from None
    return good


def event_row(data: Any, batch: Batch) -> Any:
    """The ``LandingRow`` of one event's bytes, or :class:`NotCompiled` (or any other error:
    ``rows`` hands the event to ``normalize`` whatever it raises)."""
    if batch.body_bytes > MAX_EVENT_BYTES and len(data) * SIZE_FACTOR > MAX_EVENT_BYTES:
        raise NotCompiled
    try:
        message = _decode_event(data)
    except (_DecodeError, RecursionError):
        message = None
    if message is None or (  # {} and {"page": null} read alike as structs
        type(message.context) is _Context
        and message.context.page is None
        and message.context == _EMPTY_CONTEXT
    ):
        try:
            message = _decode_event_with_context(data)
        except (_DecodeError, RecursionError):
            raise NotCompiled from None
    text = bytes(data)
    # No "@" in the bytes and no escape that could write one: no string of the event holds
    # one, and _unchanged decides its flat objects by their keys (memchr, not a walk).
    return _message_row(message, batch, b"@" not in text and b"\\" not in text, False)


def _message_row(message: Any, batch: Batch, at_free: bool, bounded: bool) -> Any:
    """The ``LandingRow`` of one decoded event (``_Event`` or ``_EventWithContext``); ``at_free``:
    its bytes hold no ``@`` (nor an escape); ``bounded``: :class:`NotCompiled` unless its JSON
    is known to fit ``MAX_EVENT_BYTES`` (:func:`_fields_bound`: an event decoded without its
    bytes, in a body larger than that)."""
    (
        tenant_id,
        secret,
        received_at,
        received_micros,
        latest,
        batch_sent_at,
        _,
        received_exact,
        latest_exact,
    ) = batch.shared
    fields = _astuple(message)  # one call for every field (_EVENT_FIELDS, checked at import)
    (
        kind,
        message_id,
        anonymous_id,
        timestamp,
        context,
        event,
        name,
        properties,
        traits,
        user_id,
        group_id,
        previous_id,
        original,
        sent_at,
        integrations,
        write_key,
        channel,
        version,
        sdk_received_at,
        metadata,
    ) = fields
    own_traits = traits
    size = 0  # bounded: the JSON of the event's context, properties and traits (at most)
    if kind is _UNSET:
        kind = batch.default_type
    kind = _KINDS.get(kind)  # EVENT_TYPES' own text, or None for any other
    if kind is None:
        raise NotCompiled
    if user_id is not None and not 0 < len(user_id) <= MAX_ID_CHARS:
        user_id = _id_or_none(user_id)
    if anonymous_id is not None and not 0 < len(anonymous_id) <= MAX_ID_CHARS:
        anonymous_id = _id_or_none(anonymous_id)
    if (
        (user_id is None and anonymous_id is None)
        or not message_id
        or len(message_id) > MAX_ID_CHARS
    ):
        raise NotCompiled
    if kind is _TRACK:
        if event is None or not event.strip():
            raise NotCompiled
    elif kind is _PAGE or kind is _SCREEN:
        event = name
    else:
        event = None
    if group_id is not None:
        group_id = _id_or_none(group_id)
    if kind is _GROUP and group_id is None:
        raise NotCompiled
    if previous_id is not None:
        previous_id = _id_or_none(previous_id)
    if kind is _ALIAS and (previous_id is None or user_id is None):
        raise NotCompiled

    if (
        integrations is not None
        or metadata is not None
        or write_key is not None
        or channel is not None
        or version is not None
        or sdk_received_at is not None
    ):  # _DROPPED_FIELDS
        for value in (integrations, write_key, channel, version, sdk_received_at, metadata):
            if (type(value) is dict or type(value) is list) and too_deep(value):
                raise NotCompiled
    properties = properties or _EMPTY
    traits = traits or _EMPTY
    if type(context) is _Context:  # the common case, inline: _struct_context
        user_agent, locale, library, ip, campaign, page = _astuple(context)  # _CONTEXT_FIELDS
        if page is None:
            if context == _EMPTY_CONTEXT:
                # {} and {"page": null} read alike as structs: their bytes tell them apart
                # (event_row decodes such an event's context as a dict; decoded_rows declines)
                raise NotCompiled
            path = url = referrer = title = search = None
        else:
            path, referrer, search, title, url = _astuple(page)  # _PAGE_FIELDS
        if bounded:  # the context's JSON: _value_bound's, from the fields read here
            size += _CONTEXT_KEYS_BOUND + _value_bound(campaign) + _str_bound(user_agent)
            size += _str_bound(locale) + _str_bound(ip)
            if page is None:
                size += 4
            else:
                size += _str_bound(path) + _str_bound(url) + _str_bound(referrer)
                size += _str_bound(title) + _str_bound(search)
        if library is None:
            if bounded:
                size += 4
        else:
            library, library_version = _astuple(library)  # name, version: one call, not two
            if bounded:
                size += _LIBRARY_KEYS_BOUND + _str_bound(library) + _str_bound(library_version)
        device = rest = None
        ctx_traits = _EMPTY
    else:
        if context:
            parts = _dict_context(context)
        else:  # the batch's context: not in the event's bytes, so not known to be @-free
            at_free = False
            parts = batch.context_parts
            if parts is None:
                parts = batch.context_parts = _dict_context(batch.batch_context or _EMPTY)
        (
            (path, url, referrer, title),
            user_agent,
            locale,
            library,
            device,
            campaign,
            rest,
            ctx_traits,
        ) = parts
    if not traits and kind is _IDENTIFY:
        traits = ctx_traits

    original = original or timestamp
    if sent_at is _UNSET:
        sent_at = batch_sent_at
    timestamp_micros = None
    if type(original) is str and received_exact >= 0 and _INTEGER_TIMES:
        # The forms SDKs send, in integers, no datetime made: the datetime path's values
        # exactly (its float rounding too, _float_micros); any other text goes that way.
        exact = _iso_micros(original)
        if exact >= 0:
            if sent_at is None:
                if exact <= latest_exact:
                    timestamp_micros = original_micros = _float_micros(exact)
                    sent_micros = None
            elif type(sent_at) is str:
                sent_exact = _iso_micros(sent_at)
                if sent_exact >= 0:
                    corrected = received_exact - (sent_exact - exact)
                    if 0 <= corrected <= latest_exact:
                        timestamp_micros = _float_micros(corrected)
                        original_micros = _float_micros(exact)
                        sent_micros = _float_micros(sent_exact)
    if timestamp_micros is None:
        timestamp_micros, original_micros, sent_micros = _datetime_micros(
            original, sent_at, received_at, received_micros, latest
        )

    properties_text = traits_text = None
    if properties:
        if _unchanged(properties, at_free):
            properties_text = _json(properties)
            if bounded:
                size += _text_bound(properties_text)
        else:
            properties_text = _scrubbed(properties, secret, "properties")
            if bounded:
                size += len(_dumps(properties))
    if traits:
        if _unchanged(traits, at_free):
            traits_text = _json(traits)
            if bounded and own_traits:
                size += _text_bound(traits_text)
        else:
            traits_text = _scrubbed(traits, secret, "traits")
            if bounded and own_traits:
                size += len(_dumps(traits))
    if bounded and size + _fields_bound(fields, context) > MAX_EVENT_BYTES:
        raise NotCompiled
    if kind is _PAGE and properties:
        # normalize: {**page, **the page properties present}, even a null one
        path = properties.get("path", path)
        url = properties.get("url", url)
        referrer = properties.get("referrer", referrer)
        title = properties.get("title", title)
    # utm and commerce columns read before the row is made: constructor arguments, not
    # attribute writes on the row afterwards
    utm = _NO_UTM
    if type(campaign) is dict and campaign:
        utm = _utm_columns(campaign)
    commerce = _NO_COMMERCE
    if properties and _has_commerce_key(properties):
        commerce = _compiled_commerce(properties)
    return LandingRow(
        tenant_id,
        message_id,
        kind,
        event,
        user_id,
        anonymous_id,
        timestamp_micros,
        original_micros,
        sent_micros,
        received_micros,
        path if path is None or type(path) is str else _text(path),
        _stripped(url) if type(url) is str else None,
        _stripped(referrer) if type(referrer) is str and referrer != NO_REFERRER else None,
        title if title is None or type(title) is str else _text(title),
        utm[0],
        utm[1],
        utm[2],
        utm[3],
        utm[4],
        _device_class(
            user_agent if user_agent is None or type(user_agent) is str else _text(user_agent)
        )
        if device is None
        else device_class(
            user_agent if user_agent is None or type(user_agent) is str else _text(user_agent),
            device,
        ),
        locale if locale is None or type(locale) is str else _text(locale),
        library if library is None or type(library) is str else _text(library),
        properties_text,
        traits_text,
        None
        if rest is None
        else _json(rest)
        if _unchanged(rest, at_free)
        else _scrubbed_json(rest, secret, "context"),
        commerce[0],
        commerce[1],
        commerce[2],
        commerce[3],
        commerce[4],
        commerce[5],
        group_id,
        previous_id,
    )


def _datetime_micros(
    original: Any, sent_at: Any, received_at: datetime, received_micros: int, latest: datetime
) -> tuple[int, int | None, int | None]:
    """The row's timestamp, originalTimestamp and sentAt in epoch microseconds, by datetime's
    parse and arithmetic (``normalize``'s): the times :func:`_iso_micros` leaves."""
    if original is not None:  # parse_time, inlined: other than ISO text is interpreted
        if type(original) is not str:
            raise NotCompiled
        try:
            original = _fromisoformat(original)  # surrounding blanks: interpreted
        except ValueError:
            raise NotCompiled from None
        if original.tzinfo is None:
            original = original.replace(tzinfo=UTC)
    if sent_at is not None:
        sent_at = parse_time(sent_at, "sentAt")
    if original is None or sent_at is None:
        timestamp = original or received_at
    else:
        timestamp = received_at - (sent_at - original)
    if timestamp > latest:  # more than MAX_FUTURE_SKEW after received_at
        raise NotCompiled
    timestamp_micros = (
        received_micros if timestamp is received_at else int(timestamp.timestamp() * 1_000_000)
    )
    return (
        timestamp_micros,
        None
        if original is None
        else timestamp_micros
        if original is timestamp
        else int(original.timestamp() * 1_000_000),
        None if sent_at is None else int(sent_at.timestamp() * 1_000_000),
    )


def _iso_micros(text: str) -> int:
    """The exact epoch microseconds of ``text`` in the form SDKs send a time in,
    ``YYYY-MM-DDTHH:MM:SS``, an optional fraction of 1 to 6 digits, then ``Z``, ``+00:00`` or
    nothing (UTC, as ``normalize`` takes a naive time), in the years 1970 to 2200; -1 for any
    other text, valid or not (``datetime.fromisoformat`` decides those). The characters are
    read in one loop (compiled, a C loop over the text's buffer), not indexed one by one."""
    size = len(text)
    if size < 19 or size > 32:
        return -1
    year = month = day = hour = minute = 0
    number = 0  # the digits read since the last separator
    micros = 0
    scale = 100_000
    point = False
    offset = size  # where the offset (Z or +00:00) starts: none
    for index, char in enumerate(text):
        code = ord(char)
        if index < 19:  # YYYY-MM-DDTHH:MM:SS
            if index == 4 or index == 7:
                if code != 45:  # -
                    return -1
                if index == 4:
                    year = number
                else:
                    month = number
                number = 0
            elif index == 10:
                if code != 84:  # T
                    return -1
                day = number
                number = 0
            elif index == 13 or index == 16:
                if code != 58:  # :
                    return -1
                if index == 13:
                    hour = number
                else:
                    minute = number
                number = 0
            else:
                digit = code - 48
                if digit < 0 or digit > 9:
                    return -1
                number = number * 10 + digit
        elif index == 19 and code == 46:  # .
            point = True
        elif point and scale > 0 and 48 <= code <= 57:  # up to 6 digits of fraction
            micros += (code - 48) * scale
            scale //= 10
        else:
            offset = index
            break
    second = number
    if point and scale == 100_000:  # no digit after the point
        return -1
    if offset < size:  # the offset: Z or +00:00 (another is left to fromisoformat)
        if size - offset == 1:
            if ord(text[offset]) != 90:  # Z
                return -1
        elif size - offset != 6 or not text.endswith("+00:00"):
            return -1
    if (
        year < 1970
        or year > 2200
        or month < 1
        or month > 12
        or day < 1
        or hour > 23
        or minute > 59
        or second > 59
    ):
        return -1
    if month == 2:
        last = 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    elif month == 4 or month == 6 or month == 9 or month == 11:
        last = 30
    else:
        last = 31
    if day > last:
        return -1
    # days since 1970-01-01 of a proleptic Gregorian date (March-based years)
    if month <= 2:
        year -= 1
        month += 9
    else:
        month -= 3
    days = (
        year * 365 + year // 4 - year // 100 + year // 400 + (153 * month + 2) // 5 + day - 719469
    )
    return ((days * 86_400 + hour * 3_600 + minute * 60 + second) * 1_000_000) + micros


_PROPERTIES = _EVENT_FIELDS.index("properties")
_TRAITS = _EVENT_FIELDS.index("traits")
_KEYS_BOUND = 2 + 24 * len(_EVENT_FIELDS)
"""An event's braces, and each field's key (17 characters at most) with its quotes, colon
and comma: bytes of its JSON outside the values."""
_CONTEXT_KEYS_BOUND = 2 + 16 * (len(_CONTEXT_FIELDS) + len(_PAGE_FIELDS)) + 2
"""A context struct's braces and keys (9 characters at most), its page's too."""
_LIBRARY_KEYS_BOUND = 2 + 16 * 2
_MAX_INT = 2**64
_MIN_INT = -(2**63)


def _fields_bound(fields: tuple, context: Any) -> int:
    """At least the bytes ``orjson.dumps`` writes for an event whose fields (``_EVENT_FIELDS``)
    are ``fields`` (read by ``orjson.loads`` from its bytes), properties and traits (at
    ``_PROPERTIES`` and ``_TRAITS``) counted as null and a context struct as empty: the caller
    adds theirs. The size rule
    (``MAX_EVENT_BYTES``) for an event decoded without its bytes: one that may be larger is
    left to the interpreted contract."""
    size = _KEYS_BOUND + 8
    for index, value in enumerate(fields):
        if value is None:
            size += 4
        elif type(value) is str:
            size += 6 * len(value) + 2
        elif index != _PROPERTIES and index != _TRAITS and value is not context:
            size += _value_bound(value)
    return size


def _value_bound(value: Any) -> int:
    """At least the bytes of ``value``'s JSON as ``orjson.dumps`` writes it: text at most six
    bytes a character (``\\u001f``), numbers their longest, a struct of the event's context
    field by field, an object of text key by key, any other object or array its JSON (an
    error for one orjson cannot write)."""
    if value is None or value is _UNSET:
        return 4
    kind = type(value)
    if kind is str:
        return 6 * len(value) + 2
    if kind is bool:
        return 5
    if kind is int:
        if _MIN_INT <= value < _MAX_INT:
            return 20
        raise NotCompiled
    if kind is float:
        return 32
    if kind is _Context or kind is _Page or kind is _Library:
        items = _astuple(value)
        size = 2 + 16 * len(items)  # keys of 9 characters at most
        for item in items:
            if item is None:
                size += 4
            elif type(item) is str:
                size += 6 * len(item) + 2
            else:
                size += _value_bound(item)
        return size
    if kind is dict:  # an object of text (a context's campaign): its keys and values counted
        size = 2
        for key, item in value.items():
            if type(key) is not str:
                return len(_dumps(value))
            if item is None:
                size += 6 * len(key) + 8  # "key":null,
            elif type(item) is str:
                size += 6 * len(key) + 6 * len(item) + 6  # "key":"text",
            else:
                return len(_dumps(value))
        return size
    return len(_dumps(value))


def _str_bound(value: Any) -> int:
    """:func:`_value_bound` of a value that is most often text or null (a context's fields),
    those two decided before any further call."""
    if value is None:
        return 4
    if type(value) is str:
        return 6 * len(value) + 2
    return _value_bound(value)


def _text_bound(text: str) -> int:
    """At least the bytes of ``text`` in UTF-8 (what orjson wrote, decoded)."""
    return len(text) if text.isascii() else 4 * len(text)


def _float_micros(exact: int) -> int:
    """``int(t.timestamp() * 1_000_000)`` of the time ``exact`` microseconds after the epoch:
    ``timestamp()`` divides the exact microseconds by 10**6 (rounded to a float, exactly as
    here, the two being below 2**53), and the float's product is truncated."""
    return int(exact / 1_000_000 * 1_000_000)


def _unchanged(value: dict, at_free: bool) -> bool:
    """``privacy.unchanged_by_scrub(value)``, decided here, compiled: at once for an object
    with keys all known to be free of rules (``privacy._SAFE_KEYS``) and no nested object or
    array, its text tested for an ``@`` unless the event's bytes hold none (``at_free``); by
    :func:`_unchanged_walk` otherwise."""
    for key, item in value.items():
        kind = type(item)
        if kind is dict or kind is list or key not in _SAFE_KEYS:
            return _unchanged_walk(value, 0)
        if kind is str and not at_free and "@" in item:
            return False  # as the walk finds (the keys it would learn are learnt later)
    return True


def _unchanged_walk(value: dict, depth: int) -> bool:
    """``privacy.unchanged_by_scrub``, the same walk compiled (it learns the same rule-free keys
    into ``privacy._SAFE_KEYS``): no key with a rule, no text holding an ``@``."""
    if depth > MAX_NESTING - 2:
        return False
    if not value.keys() <= _SAFE_KEYS:
        for key in value:
            if key not in _SAFE_KEYS:
                if _rule(key):
                    return False
                if len(_SAFE_KEYS) < _MAX_SAFE_KEYS:
                    _SAFE_KEYS.add(key)
    return _items_unchanged(value.values(), depth)


def _items_unchanged(items: Any, depth: int) -> bool:
    """``privacy._items_unchanged``, compiled."""
    for item in items:
        kind = type(item)
        if kind is str:
            if "@" in item:
                return False
        elif kind is dict:
            if not _unchanged_walk(item, depth + 1):
                return False
        elif kind is list and (
            depth + 1 > MAX_NESTING - 2 or not _items_unchanged(item, depth + 1)
        ):
            return False
    return True


def _scrubbed(value: dict, secret: bytes, field: str) -> str:
    """``contract._scrubbed_json`` (``privacy.scrub``, then JSON), compiled for an object of
    leaves whose keys' rules are none, ``drop`` or ``hash`` (an identify call's traits with an
    e-mail address): the same object. Anything else is scrubbed by ``_scrubbed_json``."""
    out = {}
    for key, item in value.items():
        kind = type(item)
        if kind is dict or kind is list:
            return _scrubbed_json(value, secret, field)
        rule = _rule(key)
        if not rule:
            out[key] = scrub(item, secret, 1) if kind is str and "@" in item else item
        elif rule == "drop":
            continue
        elif rule == "hash" and (kind is str or kind is int or kind is float):
            out[key] = _hashed(item, secret)
        else:
            return _scrubbed_json(value, secret, field)
    return _json(out)


def _hashed(value: Any, secret: bytes) -> str:
    """``privacy.hash_pii`` for an e-mail address (text holding an ``@``), compiled: the HMAC
    of its trimmed, lower-cased text, from the secret's padded keys hashed once
    (``privacy.hmac_pads``). Anything else asks ``hash_pii``."""
    if type(value) is str:
        text = value.strip()
        if "@" in text:
            pads = _HMAC_PADS.get(secret)
            if pads is None:
                pads = hmac_pads(secret)
            inner = pads[0].copy()
            inner.update(text.lower().encode())
            outer = pads[1].copy()
            outer.update(inner.digest())
            return outer.hexdigest()
    return hash_pii(value, secret)


def _json(value: Any) -> str:
    """``orjson.dumps(value).decode()``."""
    encoded = _dumps(value)
    return encoded.decode()


def _stripped(url: str) -> str:
    """``privacy.strip_url``: no call for a URL it returns as it is, and a dict lookup
    (``privacy._STRIPPED_URLS``) rather than its cache's call for one seen before."""
    if "?" not in url and "@" not in url:
        return url
    known = _STRIPPED_URLS.get(url)
    if known is None:
        known = strip_url(url)
        if len(url) <= _MAX_MEMO_CHARS:  # a long one is not kept twice (strip_url's cache)
            if len(_STRIPPED_URLS) >= _MAX_MEMO:
                _STRIPPED_URLS.clear()
            _STRIPPED_URLS[url] = known
    return known


def _device_class(user_agent: Any) -> str:
    """``privacy.device_class(user_agent)`` (text or None), a dict lookup
    (``privacy._DEVICE_CLASSES``) for a user agent seen before."""
    known = _DEVICE_CLASSES.get(user_agent)
    if known is None:
        known = device_class(user_agent)
        if user_agent is None or len(user_agent) <= _MAX_MEMO_CHARS:
            if len(_DEVICE_CLASSES) >= _MAX_MEMO:
                _DEVICE_CLASSES.clear()
            _DEVICE_CLASSES[user_agent] = known
    return known


def _id_text(value: Any) -> str | None:
    if type(value) is str:
        return _id_or_none(value)
    raise NotCompiled


def _has_commerce_key(properties: dict) -> bool:
    """``not _COMMERCE_KEYS.isdisjoint(properties)``: a loop over the keys (compiled, a set
    lookup each), not a call."""
    for key in properties:  # noqa: SIM110 (compiled, any() of a generator is the slower)
        if key in _COMMERCE_KEYS:
            return True
    return False


def _utm_columns(campaign: dict) -> tuple:
    """The row's utm columns (``utm_source`` ... ``utm_content``) of a context's campaign."""
    return (
        _text(campaign.get("source")),
        _text(campaign.get("medium")),
        _text(campaign.get("name")),
        _text(campaign.get("term")),
        _text(campaign.get("content")),
    )


def _compiled_commerce(properties: dict) -> tuple:
    """``_commerce_fields`` for the compiled pass: ids as text, revenue a number in range; the
    row's columns ``order_id``, ``revenue``, ``currency``, ``product_id``, ``experiment_id``,
    ``variation_id``."""
    order_id = revenue = currency = product_id = experiment_id = variation_id = None
    if (value := properties.get("order_id")) is not None:
        order_id = _id_text(value)
    value = properties.get("revenue", properties.get("total"))
    if value is not None:
        kind = type(value)
        if not (kind is float or (kind is int and -(2**63) <= value < 2**63)):
            raise NotCompiled
        if value < 0:
            raise NotCompiled
        revenue = float(value)
    if (value := properties.get("currency")) is not None:
        currency = _text(value)
    value = properties.get("product_id")
    if value is None:
        products = properties.get("products")
        if isinstance(products, list) and products and isinstance(products[0], dict):
            value = products[0].get("product_id")
    if value is not None:
        product_id = _id_text(value)
    if (value := properties.get("experiment_id")) is not None:
        experiment_id = _id_text(value)
    if (value := properties.get("variation_id")) is not None:
        variation_id = _id_text(value)
    return (order_id, revenue, currency, product_id, experiment_id, variation_id)


def _id_or_none(value: str | None) -> str | None:
    """``_id`` for the types ``_Event`` lets through (str or None)."""
    if value is None or 0 < len(value) <= MAX_ID_CHARS:
        return value or None
    if value == "":
        return None
    raise NotCompiled


def _text(value: Any) -> str | None:
    """``_str`` for the values it returns as they are; a number (whose text would depend on
    the parser) is left to the interpreted contract."""
    if value is None or type(value) is str:
        return value
    if type(value) is dict or type(value) is list:
        return None
    raise NotCompiled


def _dict_context(context: dict) -> tuple:
    """What the row takes from a context decoded as a dict (``normalize``'s reading of it):
    page fields, user agent, locale, library, device type, campaign, the rest, traits."""
    page = context.get("page")
    device, library = context.get("device"), context.get("library")
    return (
        (page.get("path"), page.get("url"), page.get("referrer"), page.get("title"))
        if type(page) is dict
        else _NO_PAGE,
        context.get("userAgent"),
        context.get("locale"),
        library.get("name") if type(library) is dict else None,
        _text(device.get("type")) if type(device) is dict else None,
        context.get("campaign"),
        None
        if context.keys() <= FLATTENED_CONTEXT
        else {k: v for k, v in context.items() if k not in FLATTENED_CONTEXT},
        _sub(context, "traits"),
    )
