"""``ingestion.intake``, the one way into the lake, for events the lake sends itself (the
trigger write-back): the collector's contract, privacy rules and landing files, per tenant."""

import hashlib
import hmac
from datetime import UTC, datetime

import orjson

from ingestion.intake import encode, land_encoded, write_back
from ingestion.landing import LandingLog
from ingestion.tenants import TenantRegistry
from tests.conftest import landing_rows


def email_hash(secret: bytes) -> str:
    """The e-mail's HMAC under ``secret``, written out here rather than taken from the code."""
    return hmac.new(secret, b"ada@example.com", hashlib.sha256).hexdigest()


FIRED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def message(message_id: str, **extra) -> dict:
    return {
        "type": "identify",
        "messageId": message_id,
        "userId": "u-1",
        "timestamp": "2026-11-22T11:59:00Z",
        "traits": {"email": "Ada@Example.com", "plan": "pro"},
        **extra,
    }


def test_write_back_lands_each_tenants_rows_hashed_with_its_own_secret(settings, tenant):
    registry = TenantRegistry(settings.tenants_file)
    secret = registry.get("acme").secret
    landed = write_back(
        settings,
        [
            ("acme", message("m-1"), FIRED),
            ("gone", message("m-2"), FIRED),  # a tenant removed since: an empty secret
            ("acme", message("m-3", type="nope"), FIRED),  # broken: quarantined, not raised
        ],
    )
    assert landed == {"events_stored": 2, "events_quarantined": 1}
    files = list(LandingLog(settings.landing_dir).files())
    rows = {row.get("message_id"): (row, f.kind) for f in files for row in landing_rows(f.path)}
    acme, kind = rows["m-1"]
    received_micros = 1795348800000000  # 2026-11-22T12:00Z
    assert (acme["tenant_id"], kind, acme["received_at"]) == ("acme", "events", received_micros)
    assert orjson.loads(acme["traits"]) == {"email": email_hash(secret), "plan": "pro"}
    gone, _ = rows["m-2"]
    assert gone["tenant_id"] == "gone"
    assert orjson.loads(gone["traits"]) == {"email": email_hash(b""), "plan": "pro"}
    rejected, kind = rows["m-3"]
    assert (kind, rejected["tenant_id"]) == ("rejected", "acme")
    assert rejected["reason"].startswith("'type' must be one of")
    assert "Ada@Example.com" not in rejected["payload"]


def test_a_round_of_encoded_requests_lands_one_file_per_tenant_and_kind(tmp_path):
    """The collector encodes each request on its event loop and lands a round's in its thread:
    one file per tenant and kind, the requests' lines in their order, the rows counted."""
    log = LandingLog(tmp_path)
    items = [
        encode("acme", [{"n": 1}, {"n": 2}], [{"r": 1}]),
        encode("beta", [{"n": 3}], []),
        encode("acme", [], []),
        encode("acme", [{"n": 4}], [{"r": 2}]),
    ]
    assert land_encoded(log, items) == {"events_stored": 4, "events_quarantined": 2}
    files = {(f.kind, f.path.read_bytes()) for f in log.files()}
    assert files == {
        ("events", b'{"n":1}\n{"n":2}\n{"n":4}\n'),
        ("rejected", b'{"r":1}\n{"r":2}\n'),
        ("events", b'{"n":3}\n'),
    }
