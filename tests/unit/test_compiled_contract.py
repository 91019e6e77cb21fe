"""The collector's compiled pass (msgspec) against the interpreted contract (``normalize``):
the same bronze row for every event it takes, and the events it must not take handed over.

The oracle is ``normalize``, the interpreted contract the compiled pass replaces on the hot
path (``benchmarks.differential_contract`` runs the same comparison on 30,000 messages); the
cases here are the edges where the two parsers or the privacy shortcuts could part. Every test
runs twice: on the C extension ``ingestion._rowpass`` the install builds from
``ingestion/rowpass.py``, and on ``rowpass.py`` itself, interpreted (the fallback).
"""

import hashlib
import hmac
import importlib
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import msgspec
import orjson
import pytest

from benchmarks.differential_contract import compiled_rows, corpus, rows
from ingestion import contract, rowpass
from ingestion.contract import (
    Batch,
    NotCompiled,
    check_events,
    compiled_row,
    decode_batch,
    decode_request,
    normalize,
)

RECEIVED = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True, params=["extension", "interpreted"])
def row_pass(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The build of ``rowpass.py`` that ``compiled_row`` and ``check_events`` run here. The
    extension missing fails its half: every install builds it."""
    if request.param == "extension":
        module = importlib.import_module("ingestion._rowpass")
    else:
        module = rowpass
    monkeypatch.setattr(contract, "_ROW_PASS", module)
    return module


def test_the_collector_runs_the_extension_built_from_this_source():
    """A ``rowpass.py`` edited since the install runs interpreted, not as the stale build."""
    extension = importlib.import_module("ingestion._rowpass")
    assert extension.__file__.endswith(".so")
    source = Path(rowpass.__file__).read_bytes()
    assert hashlib.sha256(source).hexdigest() == extension.SOURCE_SHA256
    assert contract._load_row_pass() is extension


def test_a_stale_extension_is_not_used(monkeypatch):
    monkeypatch.setattr(importlib.import_module("ingestion._rowpass"), "SOURCE_SHA256", "0" * 64)
    assert contract._load_row_pass() is rowpass


def test_the_extension_is_built_with_this_rowpass_pxd(monkeypatch):
    """The C types it was compiled with (``rowpass.pxd``) are part of its source too."""
    extension = importlib.import_module("ingestion._rowpass")
    declarations = Path(rowpass.__file__).with_suffix(".pxd").read_bytes()
    assert hashlib.sha256(declarations).hexdigest() == extension.DECLARATIONS_SHA256
    monkeypatch.setattr(extension, "DECLARATIONS_SHA256", "0" * 64)
    assert contract._load_row_pass() is rowpass


def test_metrics_say_whether_the_compiled_pass_runs(row_pass):
    """``/metrics``' ``compiled_row_pass``: True on the extension, False on the fallback."""
    assert contract.compiled_pass_in_use() is (row_pass is not rowpass)


def test_the_differential_corpus_makes_the_interpreted_rows(row_pass):
    """``benchmarks.differential_contract``'s comparison, within this tree and on a part of
    its corpus: every bronze and quarantine row of the compiled pass is ``normalize``'s."""
    messages = corpus(3_000)
    ours, taken = compiled_rows(messages)
    theirs = rows(messages)
    assert [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b] == []
    assert taken > len(messages) // 2  # most of it took the compiled pass


SECRET = b"s" * 32
BASE = {
    "type": "track",
    "event": "Product Viewed",
    "messageId": "m-1",
    "anonymousId": "a-1",
    "timestamp": "2026-11-22T11:59:00.123456Z",
    "context": {
        "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148",
        "locale": "en-US",
        "library": {"name": "analytics.js", "version": "5"},
        "ip": "203.0.113.9",
        "page": {"path": "/p/1", "url": "https://shop.example/p/1?email=a@b.co&x=1"},
        "campaign": {"name": "spring", "source": "news"},
    },
    "properties": {"product_id": "sku-1", "price": 12.5, "revenue": 3},
}


def batch(**kw) -> Batch:
    return Batch("acme", SECRET, RECEIVED, **kw)


def compiled(message: dict, **kw) -> dict:
    return msgspec.structs.asdict(compiled_row(orjson.dumps(message), batch(**kw)))


def interpreted(message: dict, **kw) -> dict:
    translated = {
        "batch_context": kw.get("batch_context"),
        "batch_sent_at": kw.get("batch_sent_at"),
        "default_type": kw.get("default_type"),
    }
    return normalize(message, tenant_id="acme", secret=SECRET, received_at=RECEIVED, **translated)


TAKEN = {
    "plain track": BASE,
    "page with its url in properties": {
        **BASE,
        "type": "page",
        "name": "Home",
        "properties": {"url": "https://shop.example/?token=t&q=1", "title": "T"},
    },
    "identify with e-mail traits": {
        **BASE,
        "type": "identify",
        "userId": "u-1",
        "traits": {"email": " Ada@Example.com", "plan": "pro", "Phone": "+1 555 0100"},
    },
    "an e-mail deep in properties": {
        **BASE,
        "properties": {"nested": [{"who": "x@y.io"}, {"url": "http://a/?token=1"}], "n": 1},
    },
    "a rule key nested in properties": {**BASE, "properties": {"a": {"First-Name": "Ada"}}},
    "an e-mail under a plain key": {
        **BASE,
        "properties": {"contact": "who@where.org", "list": ["me@x.io", "not an address@"]},
    },
    "a context field without a column": {
        **BASE,
        "context": {**BASE["context"], "os": {"name": "iOS"}, "device": {"type": "tablet"}},
    },
    "the RudderStack referrer": {
        **BASE,
        "context": {**BASE["context"], "page": {"referrer": "$direct", "title": "x"}},
    },
    "commerce and experiment properties": {
        **BASE,
        "event": "Order Completed",
        "properties": {
            "order_id": "o-1",
            "total": 30,
            "currency": "EUR",
            "products": [{"product_id": "p-9"}],
            "experiment_id": "e",
            "variation_id": "v",
        },
    },
    "a naive timestamp and a sentAt": {
        **BASE,
        "timestamp": "2026-11-22T11:00:00",
        "sentAt": "2026-11-22T11:00:05+00:00",
    },
    "group and alias ids": {**BASE, "type": "group", "groupId": "g-1", "previousId": "p-0"},
    "an empty user id next to an anonymous one": {**BASE, "userId": ""},
    "integrations and SDK metadata": {
        **BASE,
        "integrations": {"All": True},
        "_metadata": {"bundled": ["Segment.io"]},
        "channel": "client",
    },
}


@pytest.mark.parametrize("message", TAKEN.values(), ids=TAKEN.keys())
def test_the_compiled_row_is_the_interpreted_one(message):
    assert compiled(message) == interpreted(message)


@pytest.mark.parametrize(
    ("context", "message_context"),
    [
        ({"page": {"url": "https://b.example/?phone=1"}, "traits": {"email": "b@c.de"}}, None),
        ({"library": {"name": "analytics-python"}}, {}),
        ({"library": {"name": "analytics-python"}}, {"page": None}),
    ],
    ids=["no context", "an empty one", "one of nulls"],
)
def test_the_batch_context_applies_as_interpreted(context, message_context):
    message = {**BASE, "type": "identify", "userId": "u"}
    if message_context is None:
        message.pop("context")
    else:
        message["context"] = message_context
    kw = {"batch_context": context, "batch_sent_at": "2026-11-22T11:59:30Z"}
    assert compiled(message, **kw) == interpreted(message, **kw)


@pytest.mark.parametrize(
    ("context", "message_context"),
    [
        ({"locale": "fr-FR", "traits": {"email": "b@c.de"}}, None),
        ({"locale": "fr-FR", "library": {"name": "analytics-python"}}, {}),
        ({"locale": "fr-FR", "library": {"name": "analytics-python"}}, {"page": None}),
    ],
    ids=["no context", "an empty one", "one of nulls"],
)
def test_the_batch_context_applies_as_interpreted_to_a_batch_decoded_in_one_pass(
    context, message_context
):
    """``{}`` and ``{"page": null}`` read alike as context structs, but only the first leaves
    the event the batch's context: a batch decoded in one pass makes the interpreted rows."""
    from ingestion.intake import accept, read_request
    from ingestion.tenants import Tenant

    message = {**BASE, "type": "identify", "userId": "u"}
    if message_context is None:
        message.pop("context")
    else:
        message["context"] = message_context
    body = orjson.dumps({"batch": [message], "context": context})
    got = accept(read_request(body, True), Tenant("acme", SECRET), RECEIVED)
    expected = _interpreted([message], body, batch_context=context)
    assert [msgspec.structs.asdict(r) for r in got.good] == expected.good
    assert got.report == expected.report == []


def _check(events: list, body_bytes: int, compiled: bool, batch_context=None, batch_sent_at=None):
    """``check_events`` for tenant acme on ``events`` of a body of ``body_bytes``."""
    return check_events(
        events,
        tenant_id="acme",
        secret=SECRET,
        received_at=RECEIVED,
        batch_context=batch_context,
        batch_sent_at=batch_sent_at,
        default_type=None,
        body_bytes=body_bytes,
        compiled=compiled,
    )


def _interpreted(events: list[dict], body: bytes, batch_context: dict | None = None):
    """What the interpreted contract makes of ``events``, sent as ``body`` to tenant acme: the
    answer a request decoded in one pass must give."""
    return _check(events, len(body), compiled=False, batch_context=batch_context)


TIMES = [  # the forms the compiled pass reads in integers, then others datetime reads
    "2026-11-22T11:59:00Z",
    "2026-11-22T11:59:00.1Z",
    "2026-11-22T11:59:00.12Z",
    "2026-11-22T11:59:00.123Z",
    "2026-11-22T11:59:00.1234Z",
    "2026-11-22T11:59:00.12345Z",
    "2026-11-22T11:59:00.123456Z",
    "2026-11-22T11:59:00.123456+00:00",
    "2026-11-22T11:59:00.123456",
    "2026-11-22T11:59:00",
    "2024-02-29T23:59:59.999999Z",
    "2000-02-29T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2026-11-22T11:59:00.1234567Z",
    "2026-11-22T11:59:00.Z",
    "2026-11-22T11:59:00,5Z",
    "2026-11-22T11:59:00-00:00",
    "2026-11-22T13:59:00+02:00",
    "2026-11-22 11:59:00Z",
    "2026-11-22t11:59:00Z",
    "20261122T115900Z",
    "2026-11-22T11:59Z",
    "1969-12-31T23:59:59.5Z",
    "2200-12-31T23:59:59Z",
    "2201-01-01T00:00:00Z",
    "2026-02-29T00:00:00Z",
    "2100-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-11-22T24:00:00Z",
    "2026-11-22T11:60:00Z",
    "2026-11-22T11:59:60Z",
    "2026-11-22T11:59:00z",
    "2026-11-22T11:59:00+0000",
    "2026-11-22T11:59:00Z ",
    "2026-11-2xT11:59:00Z",
    "",
]


@pytest.mark.parametrize("sent_at", [None, "2026-11-22T11:59:30.5Z", "2026-11-22T11:59:30"])
@pytest.mark.parametrize("timestamp", TIMES)
def test_times_in_every_form_make_the_interpreted_columns(
    timestamp, sent_at, row_pass, monkeypatch
):
    """The compiled pass reads the usual forms in integers (no datetime): the interpreted
    contract's columns exactly; any other form is datetime's to read, as before. (Interpreted,
    ``rowpass`` reads them with datetime: its integer reading is tested here all the same.)"""
    monkeypatch.setattr(row_pass, "_INTEGER_TIMES", True)
    message = {**BASE, "timestamp": timestamp, **({"sentAt": sent_at} if sent_at else {})}
    try:
        expected = interpreted(message)
    except contract.ContractError:
        with pytest.raises(NotCompiled):
            compiled(message)
        return
    try:
        assert compiled(message) == expected
    except NotCompiled:  # left to the interpreted contract, which makes ``expected``
        assert TIMES.index(timestamp) > TIMES.index("2026-11-22T11:59:00")


def test_the_usual_forms_make_no_datetime(row_pass, monkeypatch):
    """Times as SDKs send them (``Z``, ``+00:00`` or none; 0 to 6 decimals) never reach
    datetime's parse in the extension, with an event's sentAt or the batch's (interpreted,
    they do: datetime's parse is the faster there)."""
    monkeypatch.setattr(row_pass, "_INTEGER_TIMES", True)  # interpreted too: its source
    monkeypatch.setattr(row_pass, "_fromisoformat", None)  # a call of either: TypeError
    monkeypatch.setattr(row_pass, "parse_time", None)
    for timestamp in TIMES[: TIMES.index("1970-01-01T00:00:00Z") + 1]:
        message = {**BASE, "timestamp": timestamp}
        for kw in ({}, {"batch_sent_at": "2026-11-22T11:59:30.5Z"}):
            assert compiled(message, **kw) == interpreted(message, **kw)
        sent = {**message, "sentAt": "2026-11-22T11:59:30+00:00"}
        assert compiled(sent) == interpreted(sent)


def test_integer_times_round_as_datetime_timestamp_does(row_pass, monkeypatch):
    """``int(t.timestamp() * 1_000_000)`` is a float's product, now and then one below the
    exact microseconds: the compiled pass's integers round the same way, the batch's sentAt
    and the skew correction included (seeded times over the years the integers cover)."""
    monkeypatch.setattr(row_pass, "_INTEGER_TIMES", True)
    rng = random.Random(29)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for _ in range(2_000):
        when = epoch + timedelta(microseconds=rng.randrange(7_258_118_400_000_000))
        sent = when + timedelta(microseconds=rng.randrange(10**9))
        message = {**BASE, "timestamp": when.isoformat().replace("+00:00", "Z")}
        kw = {"batch_sent_at": sent.isoformat()} if rng.random() < 0.5 else {}
        try:
            expected = interpreted(message, **kw)
        except contract.ContractError:  # in the future of RECEIVED
            continue
        assert compiled(message, **kw) == expected


def test_traits_keep_only_hashes_of_contact_details():
    """Written out, not taken from the code: the e-mail's HMAC under the tenant's secret."""
    row = compiled(TAKEN["identify with e-mail traits"])
    expected = hmac.new(SECRET, b"ada@example.com", hashlib.sha256).hexdigest()
    assert orjson.loads(row["traits"])["email"] == expected
    assert "Ada@Example.com" not in row["traits"] and "555" not in row["traits"]
    assert row["page_url"] == "https://shop.example/p/1?x=1"
    nested = compiled(TAKEN["an e-mail deep in properties"])["properties"]
    assert "x@y.io" not in nested and "token" not in nested
    plain = orjson.loads(compiled(TAKEN["an e-mail under a plain key"])["properties"])
    assert plain["contact"] == hmac.new(SECRET, b"who@where.org", hashlib.sha256).hexdigest()
    assert plain["list"][1] == "not an address@"


LEFT = {
    "a number as user id": {**BASE, "userId": 42},
    "an unknown top-level field": {**BASE, "extra": 1},
    "no messageId": {k: v for k, v in BASE.items() if k != "messageId"},
    "padded timestamp": {**BASE, "timestamp": " 2026-11-22T11:59:00Z "},
    "a number as page path": {
        **BASE,
        "context": {**BASE["context"], "page": {"path": 12}},
    },
    "negative revenue": {**BASE, "properties": {"revenue": -1}},
    "a future timestamp": {**BASE, "timestamp": "2026-11-24T12:00:00Z"},
}


def _deep(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"d": value}
    return {"deep": value}


LEFT["nested past the limit"] = {**BASE, "integrations": _deep(40)}
LEFT["properties nested past the limit"] = {**BASE, "properties": _deep(40)}


@pytest.mark.parametrize("message", LEFT.values(), ids=LEFT.keys())
def test_what_the_compiled_pass_does_not_take_is_interpreted(message):
    with pytest.raises(NotCompiled):
        compiled_row(orjson.dumps(message), batch())
    data = orjson.dumps({"batch": [message]})
    request = decode_request(data, batched=True)
    checked = _check(request.events, len(data), compiled=True)
    assert checked.compiled == 0
    try:
        expected = interpreted(message)
    except Exception as err:  # the contract rejects it: so must the request
        assert [r["reason"] for r in checked.bad] == [str(err)]
    else:
        assert checked.good == [expected]


def test_integers_past_64_bits_are_read_as_orjson_reads_them():
    """orjson reads 99999999999999999999999 as a float, msgspec as an int: such an event is
    interpreted, and its properties stored as before (written out here by hand)."""
    data = orjson.dumps(BASE)[:-2] + b',"big":99999999999999999999999}}'
    request = decode_request(b'{"batch":[' + data + b"]}", batched=True)
    checked = _check(request.events, len(data), compiled=True)
    assert checked.compiled == 0
    assert orjson.loads(checked.good[0]["properties"]) == {
        "product_id": "sku-1",
        "price": 12.5,
        "revenue": 3,
        "big": 1e23,
    }
    assert checked.good[0]["properties"].endswith('"big":1e+23}')


def test_rows_keep_their_events_order_across_both_passes():
    """The loader keeps the last copy of a message id: order in the file is meaning."""
    first = {**BASE, "messageId": "dup", "properties": {"n": 1}}
    odd = {**BASE, "messageId": "dup", "userId": 7, "properties": {"n": 2}}
    last = {**BASE, "messageId": "other"}
    data = orjson.dumps({"batch": [first, odd, last]})
    request = decode_request(data, batched=True)
    checked = _check(request.events, len(data), compiled=True)
    assert checked.compiled == 2
    rows = [r if isinstance(r, dict) else msgspec.structs.asdict(r) for r in checked.good]
    assert [(r["message_id"], r["properties"]) for r in rows] == [
        ("dup", '{"n":1}'),
        ("dup", '{"n":2}'),
        ("other", '{"product_id":"sku-1","price":12.5,"revenue":3}'),
    ]


@pytest.mark.parametrize(
    "body",
    [
        b'{"batch":[],"unknown":1}',
        b'{"batch":{}}',
        b"[1]",
        b'{"batch":[{"type":"track"}],"sentAt":NaN}',
        b'{"batch":[{"type":"track","event":"\xff"}]}',
    ],
    ids=["an unknown envelope field", "batch not a list", "not an object", "NaN", "bad UTF-8"],
)
def test_bodies_the_compiled_decode_leaves_to_the_interpreted_path(body):
    assert decode_request(body, batched=True) is None


INVALID_UTF8 = [
    b"\xff",
    b"\x80",
    b"\xc3",
    b"\xc0\x80",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
]
"""A byte no UTF-8 starts with, a lone continuation, a truncated sequence, an overlong one, a
truncated three-byte one, a surrogate, a code point past U+10FFFF."""
PLACES = {
    "event name": b'{"batch":[{"type":"track","event":"a%sb"}]}',
    "property key": b'{"batch":[{"type":"track","properties":{"k%s":1}}]}',
    "property value": b'{"batch":[{"type":"track","properties":{"k":"%s"}}]}',
    "dropped field": b'{"batch":[{"type":"track","integrations":{"x":["%s"]}}]}',
    "page title": b'{"batch":[{"type":"track","context":{"page":{"title":"%s"}}}]}',
    "batch context": b'{"batch":[],"context":{"a":"%s"}}',
    "event key": b'{"batch":[{"type":"track","ev%s":1}]}',
    "after the body": b'{"batch":[]}%s',
    "unterminated text": b'{"batch":[{"type":"track","event":"%s',
}


@pytest.mark.parametrize("place", PLACES.values(), ids=PLACES.keys())
def test_a_batch_with_invalid_utf8_is_not_decoded_in_one_pass(place):
    """``decode_batch`` has no UTF-8 check of its own: msgspec's decode refuses such a body
    wherever the byte is (the body then goes the way ``decode_request`` sends it)."""
    for invalid in INVALID_UTF8:
        body = place.replace(b"%s", invalid)
        with pytest.raises(UnicodeDecodeError):
            body.decode()
        assert decode_batch(body) is None


def test_an_error_in_the_compiled_pass_is_the_interpreted_contracts_to_report():
    """A sentAt 2,000 years ahead puts the corrected timestamp before year 1 (OverflowError,
    found by the collector's fuzz test): quarantined as the interpreted contract does it,
    never a 500."""
    message = {**BASE, "sentAt": "4053-01-01T00:00:00Z"}
    with pytest.raises(NotCompiled):
        compiled_row(orjson.dumps(message), batch())
    data = orjson.dumps({"batch": [message, BASE]})
    request = decode_request(data, batched=True)
    checked = _check(request.events, len(data), compiled=True)
    assert [r["reason"] for r in checked.bad] == ["event could not be processed (OverflowError)"]
    assert checked.compiled == 1 and checked.unexpected == 1


def _checked(data: bytes) -> list[dict]:
    """``check_events`` on a ``/v1/batch`` body's events; the good rows as dicts."""
    request = decode_request(data, batched=True)
    checked = _check(
        request.events,
        len(data),
        compiled=True,
        batch_context=request.context,
        batch_sent_at=request.sent_at,
    )
    assert checked.bad == []
    return [r if isinstance(r, dict) else msgspec.structs.asdict(r) for r in checked.good]


def test_each_event_of_a_batch_makes_the_row_it_makes_alone():
    """Across a batch (an event the compiled pass leaves in the middle, e-mails in some
    events only), each row is the one its event makes in a batch of its own."""
    events = list(TAKEN.values())
    for batch_events in (events, [*events[:3], {**BASE, "userId": 42}, *events[3:]]):
        alone = [_checked(orjson.dumps({"batch": [event]}))[0] for event in batch_events]
        assert _checked(orjson.dumps({"batch": batch_events})) == alone


def test_an_escaped_at_sign_is_an_at_sign_to_the_privacy_rules():
    """The shortcut for events whose bytes hold no ``@`` takes none with an escape: an
    e-mail written ``\\u0040`` is hashed like any other (expected HMAC written out)."""
    plain = {**BASE, "context": {"locale": "en"}, "properties": {"contact": "x"}}  # no @
    data = (
        b'{"batch":['
        + orjson.dumps(plain)
        + b","
        + orjson.dumps({**plain, "messageId": "m-2"}).replace(b'"x"', b'"ada\\u0040example.com"')
        + b"]}"
    )
    first, second = _checked(data)
    assert orjson.loads(first["properties"]) == {"contact": "x"}
    expected = hmac.new(SECRET, b"ada@example.com", hashlib.sha256).hexdigest()
    assert orjson.loads(second["properties"]) == {"contact": expected}


def test_an_e_mail_in_the_batch_context_is_hashed_for_events_without_an_at_sign():
    """An event without a context takes the batch's, which its own bytes do not show: its
    ``@`` counts (the second event meets keys the first taught ``unchanged_by_scrub``)."""
    message = {k: v for k, v in BASE.items() if k != "context"}
    data = orjson.dumps(
        {
            "batch": [message, {**message, "messageId": "m-2"}],
            "context": {"timezone": "UTC", "note": "ada@example.com"},
        }
    )
    expected = hmac.new(SECRET, b"ada@example.com", hashlib.sha256).hexdigest()
    assert [orjson.loads(row["context"]) for row in _checked(data)] == [
        {"timezone": "UTC", "note": expected}
    ] * 2


LARGE = {
    "long text in properties": {**BASE, "properties": {"note": "x" * 33_000}},
    "text in properties just under the limit": {**BASE, "properties": {"note": "x" * 31_000}},
    "many properties": {**BASE, "properties": {f"k{i}": i for i in range(4_000)}},
    "long event name": {**BASE, "event": "E" * 33_000},
    "control characters written six bytes each": {**BASE, "event": "\x01" * 5_500},
    "two-byte characters": {**BASE, "properties": {"note": "é" * 16_500}},
    "long page url": {
        **BASE,
        "context": {**BASE["context"], "page": {"url": "https://s.example/" + "p" * 33_000}},
    },
    "large campaign": {**BASE, "context": {**BASE["context"], "campaign": {"x": "c" * 33_000}}},
    "large integrations": {**BASE, "integrations": {"All": ["i" * 100] * 330}},
    "traits with an e-mail": {
        **BASE,
        "type": "identify",
        "traits": {"email": "ada@example.com", "bio": "b" * 33_000},
    },
    "large library version": {
        **BASE,
        "context": {**BASE["context"], "library": {"name": "a", "version": "v" * 33_000}},
    },
    "campaign of control characters": {  # 5,500 characters, 33,000 bytes as orjson writes them
        **BASE,
        "context": {**BASE["context"], "campaign": {"name": "\x01" * 5_500}},
    },
}


@pytest.mark.parametrize("message", LARGE.values(), ids=LARGE.keys())
def test_a_batch_decoded_in_one_pass_keeps_the_size_rule(message):
    """A batch decoded with its events in one pass (``decode_batch``: no event's bytes to
    measure) rejects an event larger than ``MAX_EVENT_BYTES`` as the interpreted contract
    does, and makes the same rows for it and the events around it, a body small or large."""
    from ingestion.intake import accept, read_request
    from ingestion.tenants import Tenant

    small = [{**BASE, "messageId": "m-0"}, {**BASE, "messageId": "m-2"}]
    for batch_events in ([small[0], message, small[1]], [message], small):
        body = orjson.dumps({"batch": batch_events})
        submission = read_request(body, True)
        assert submission.decoded
        got = accept(submission, Tenant("acme", SECRET), RECEIVED)
        expected = _interpreted(batch_events, body)
        assert [msgspec.structs.asdict(r) for r in got.good] == expected.good
        assert got.report == expected.report
        assert [r["rejection_id"] for r in got.bad] == [r["rejection_id"] for r in expected.bad]
