"""The bronze contract: normalisation, clock-skew correction and clear rejections."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from ingestion.contract import (
    MAX_EVENT_BYTES,
    ContractError,
    corrected_timestamp,
    encoded_size,
    maybe_oversized,
    message_id_for,
    normalize,
    rejection,
)

RECEIVED = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
SECRET = b"s"


def norm(message, **kw):
    return normalize(message, tenant_id="acme", secret=SECRET, received_at=RECEIVED, **kw)


def micros(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000)


def test_maybe_oversized_names_every_event_over_the_limit():
    """The runs it encodes together must never hide an event over the limit, or one orjson
    cannot write, whatever the sizes and the body size it is told."""
    rng = random.Random(7)
    for _ in range(300):
        sizes = [rng.choice([0, 10, 5_000, 20_000, 32_700, 32_800, 40_000]) for _ in range(40)]
        messages = [{"blob": "x" * size} for size in sizes[: rng.randint(1, 40)]]
        if rng.random() < 0.2:
            messages[rng.randrange(len(messages))] = {"text": "\ud800"}  # not writable
        over = set()
        for index, message in enumerate(messages):
            try:
                if encoded_size(message) > MAX_EVENT_BYTES:
                    over.add(index)
            except ContractError:
                over.add(index)
        body_bytes = rng.choice([1, sum(sizes), 10**6])
        assert over <= maybe_oversized(messages, body_bytes)
    small = [{"blob": "x" * 100} for _ in range(100)]
    assert maybe_oversized(small, 12_000) == set()


def test_clock_skew_is_corrected_the_segment_way():
    # The client clock runs 10 minutes fast: sentAt and timestamp both carry the skew.
    original = RECEIVED + timedelta(minutes=10) - timedelta(seconds=30)
    sent = RECEIVED + timedelta(minutes=10)
    row = norm(
        {
            "type": "track",
            "event": "X",
            "anonymousId": "a",
            "messageId": "m1",
            "timestamp": original.isoformat(),
            "sentAt": sent.isoformat(),
        }
    )
    assert row["timestamp"] == micros(RECEIVED - timedelta(seconds=30))
    assert row["original_timestamp"] == micros(original)
    assert row["received_at"] == micros(RECEIVED)


def test_missing_timestamps_fall_back_to_receipt():
    assert corrected_timestamp(None, None, RECEIVED) == RECEIVED
    original = RECEIVED - timedelta(hours=1)
    assert corrected_timestamp(original, None, RECEIVED) == original


def test_track_flattens_commerce_and_context():
    row = norm(
        {
            "type": "track",
            "event": "Order Completed",
            "userId": 42,
            "messageId": "m2",
            "properties": {
                "order_id": "o1",
                "revenue": 19.5,
                "currency": "USD",
                "products": [{"product_id": "sku-1"}],
                "email": "a@b.co",
            },
            "context": {
                "userAgent": "Mozilla/5.0 (iPhone) Mobile",
                "ip": "1.2.3.4",
                "campaign": {"source": "news", "medium": "email", "name": "spring"},
                "page": {"url": "https://s.example/c?email=a@b.co&x=1", "path": "/c"},
            },
        }
    )
    assert row["user_id"] == "42"
    assert (row["order_id"], row["revenue"], row["currency"], row["product_id"]) == (
        "o1",
        19.5,
        "USD",
        "sku-1",
    )
    assert (row["utm_source"], row["utm_medium"], row["utm_campaign"]) == (
        "news",
        "email",
        "spring",
    )
    assert row["device_class"] == "mobile"
    assert row["page_url"] == "https://s.example/c?x=1"
    assert "a@b.co" not in row["properties"] and "1.2.3.4" not in str(row)


def test_batch_context_applies_when_event_has_none():
    row = norm(
        {"type": "page", "anonymousId": "a", "messageId": "m", "properties": {"path": "/x"}},
        batch_context={"locale": "de-DE"},
    )
    assert (row["locale"], row["page_path"]) == ("de-DE", "/x")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not an object", "must be a JSON object"),
        ({"type": "launch", "anonymousId": "a"}, "'type' must be one of"),
        ({"type": "track", "event": "X"}, "either 'userId' or 'anonymousId' is required"),
        ({"type": "track", "anonymousId": "a"}, "'event' (a non-empty string) is required"),
        (
            {"type": "track", "event": "X", "anonymousId": {"a": 1}},
            "'anonymousId' must be a string or number",
        ),
        (
            {"type": "track", "event": "X", "anonymousId": "a", "properties": [1]},
            "'properties' must be an object",
        ),
        (
            {"type": "track", "event": "X", "anonymousId": "a", "timestamp": "yesterday"},
            "not a valid ISO 8601",
        ),
        (
            {"type": "track", "event": "X", "anonymousId": "a", "timestamp": 17},
            "must be an ISO 8601 string",
        ),
        (
            {"type": "track", "event": "X", "anonymousId": "a", "properties": {"revenue": "12"}},
            "must be a number",
        ),
        (
            {"type": "track", "event": "X", "anonymousId": "a", "properties": {"revenue": -1}},
            "must not be negative",
        ),
        ({"type": "group", "anonymousId": "a"}, "'groupId' is required"),
        ({"type": "alias", "userId": "u"}, "'previousId' and 'userId' are required"),
        (
            {
                "type": "track",
                "event": "X",
                "anonymousId": "a",
                "timestamp": "2030-01-01T00:00:00Z",
            },
            "more than a day after",
        ),
    ],
)
def test_contract_violations_name_the_problem(message, reason):
    with pytest.raises(ContractError) as err:
        norm(message)
    assert reason in str(err.value)


def test_message_without_id_gets_a_stable_content_hash():
    message = {"type": "track", "event": "X", "anonymousId": "a", "timestamp": RECEIVED.isoformat()}
    assert (
        norm(message)["message_id"] == norm(dict(message))["message_id"] == message_id_for(message)
    )


def test_rejection_keeps_reason_and_scrubbed_payload():
    row = rejection(
        tenant_id="acme",
        secret=SECRET,
        received_at=RECEIVED,
        payload={"messageId": "m", "traits": {"email": "a@b.co"}, "context": {"ip": "1.2.3.4"}},
        reason="bad",
        index=3,
    )
    assert row["reason"] == "bad" and row["message_id"] == "m"
    assert "a@b.co" not in row["payload"] and "1.2.3.4" not in row["payload"]


def nested(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize("field", ["properties", "traits", "context", "integrations"])
def test_nesting_past_the_limit_is_a_contract_error_not_a_crash(field):
    from ingestion.privacy import MAX_NESTING

    message = {"type": "identify", "userId": "u", "messageId": "m", field: nested(2000)}
    with pytest.raises(ContractError, match=f"'{field}' is nested deeper than {MAX_NESTING}"):
        norm(message)
    assert norm({**message, field: nested(MAX_NESTING)})["message_id"] == "m"


def test_a_rejection_stores_whatever_the_event_held():
    payload = {"messageId": {"x": 1}, "p": nested(3000), "n": float("nan"), "s": "\ud800"}
    row = rejection(
        tenant_id="acme", secret=SECRET, received_at=RECEIVED, payload=payload, reason="r", index=0
    )
    assert row["message_id"] is None and "truncated" in row["payload"]
    assert '"n":"nan"' in row["payload"] and "\ufffd" in row["payload"]


def test_rudderstack_browser_conventions():
    # RudderStack's browser SDK sends identify traits as context.traits only, and "$direct"
    # as the referrer of a visit without one.
    context = {"traits": {"email": "a@b.co", "plan": "x"}, "page": {"referrer": "$direct"}}
    identify = norm({"type": "identify", "userId": "u", "messageId": "i", "context": context})
    assert "a@b.co" not in identify["traits"] and '"plan":"x"' in identify["traits"]
    page = norm({"type": "page", "anonymousId": "a", "messageId": "p", "context": context})
    assert page["page_referrer"] is None and page["traits"] is None
