"""Destinations in triggers.yml: validation messages, ${NAME} resolution, the address policy
and the retry schedule."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from lakepulse.triggers.delivery import retry_delay, sign, webhook_body
from lakepulse.triggers.destinations import (
    DestinationError,
    UnresolvedSecret,
    parse_destinations,
    validate_destinations,
)
from lakepulse.triggers.transport import is_public

SOURCE = "dbt_project/triggers.yml"


def test_a_valid_mapping_has_no_errors_and_keeps_references_unresolved(tmp_path):
    (tmp_path / "s.j2").write_text("{{ trigger }}")
    (tmp_path / "b.j2").write_text("{{ payload }}")
    raw = {
        "crm": {"type": "webhook", "url": "https://crm.example/hook", "secret": "${CRM_SECRET}"},
        "team": {"type": "slack", "url": "${SLACK_URL}"},
        "mail": {
            "type": "email",
            "host": "smtp.example",
            "username": "bot",
            "password": "${SMTP_PASSWORD}",
            "from": "shop@example.com",
            "to": "sales@example.com",
            "subject_template": "s.j2",
            "body_template": "b.j2",
        },
    }
    source = tmp_path / "triggers.yml"
    assert validate_destinations(raw, source) == []
    parsed = parse_destinations(raw, source)
    assert parsed["crm"].get("secret") == "${CRM_SECRET}"
    assert parsed["crm"].resolve("secret", {"CRM_SECRET": "k"}) == "k"
    with pytest.raises(UnresolvedSecret, match="CRM_SECRET is not set"):
        parsed["crm"].resolve("secret", {})
    assert parsed["mail"].get("port", 587) == 587 and parsed["team"].allow_private is False


@pytest.mark.parametrize(
    ("spec", "field", "says"),
    [
        ({"type": "fax"}, "type", "must be one of webhook, email, slack"),
        ({"type": "webhook", "secret": "${S}"}, "url", "required"),
        ({"type": "webhook", "url": "ftp://x", "secret": "${S}"}, "url", "http:// or https://"),
        ({"type": "webhook", "url": "https://x", "secret": "hunter2"}, "secret", "literal"),
        ({"type": "webhook", "url": "https://x", "secret": "${S"}, "secret", "reference"),
        (
            {"type": "slack", "url": "https://x", "allow_private": "yes"},
            "allow_private",
            "true or false",
        ),
        ({"type": "slack", "url": "https://x", "timeout_seconds": -1}, "timeout_seconds", "number"),
        ({"type": "slack", "url": "https://x", "colour": "red"}, "colour", "not a slack field"),
        (
            {
                "type": "email",
                "host": "h",
                "from": "a@b.c",
                "to": "d@e.f",
                "starttls": False,
                "subject_template": "missing.j2",
                "body_template": "missing.j2",
            },
            "starttls",
            "allow_plain",
        ),
        (
            {
                "type": "email",
                "host": "h",
                "from": "a@b.c",
                "to": "d@e.f",
                "subject_template": "missing.j2",
                "body_template": "missing.j2",
            },
            "subject_template",
            "no template file",
        ),
    ],
)
def test_errors_name_the_file_the_destination_and_the_field(spec, field, says):
    errors = validate_destinations({"dest": spec}, SOURCE)
    assert any(
        e.startswith(f"{SOURCE}: destination 'dest': field {field!r}") and says in e for e in errors
    ), errors
    with pytest.raises(DestinationError):
        parse_destinations({"dest": spec}, SOURCE)


def test_a_template_with_a_syntax_error_is_refused_with_its_line(tmp_path):
    (tmp_path / "s.j2").write_text("ok")
    (tmp_path / "b.j2").write_text("line one\n{% if %}")
    spec = {
        "type": "email",
        "host": "h",
        "from": "a@b.c",
        "to": "d@e.f",
        "subject_template": "s.j2",
        "body_template": "b.j2",
    }
    (error,) = validate_destinations({"mail": spec}, tmp_path / "triggers.yml")
    assert "field 'body_template'" in error and "line 2" in error


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_loopback_private_link_local_and_metadata_addresses_are_not_public(address):
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_routable_addresses_are_public(address):
    assert is_public(address)


def test_the_retry_schedule_doubles_from_30_seconds_with_jitter_and_a_cap():
    rng = random.Random(7)
    for attempts, base in [(1, 30), (2, 60), (3, 120), (9, 7680), (12, 4 * 3600)]:
        delay = retry_delay(attempts, rng)
        assert timedelta(seconds=base * 0.8) <= delay <= timedelta(seconds=base * 1.2)


def test_the_signature_is_hmac_sha256_of_the_exact_body():
    import hashlib
    import hmac
    from datetime import UTC, datetime

    firing = {
        "firing_id": "f1",
        "trigger": "t",
        "kind": "k",
        "tenant_id": "shop",
        "user_id": "u",
        "fired_at": datetime(2026, 1, 1, tzinfo=UTC),
        "payload": '{"a": 1}',
    }
    body = webhook_body(firing, None)
    assert sign(body, "key") == "sha256=" + hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert sign(body + b" ", "key") != sign(body, "key")


def test_every_destination_type_has_a_renderer_and_every_renderer_a_type():
    """A type validation accepts but no renderer sends would dead-letter every firing to it."""
    from lakepulse.triggers.delivery import RENDERERS
    from lakepulse.triggers.destinations import FIELDS

    assert set(RENDERERS) == {"webhook", "slack", "email"}
    assert set(RENDERERS) == set(FIELDS)


def test_an_unknown_destination_type_is_a_dead_letter_that_names_it(tmp_path):
    """The registry, not an if-chain, picks the renderer: a type with none is never sent."""
    from lakepulse.triggers.delivery import attempt
    from lakepulse.triggers.destinations import Destination

    fax = Destination(name="fax", type="fax", fields={}, base_dir=tmp_path)
    outcome = attempt(fax, {"firing_id": "f1"}, None, {})
    assert not outcome.delivered and not outcome.retryable
    assert outcome.error == "KeyError: 'fax'"
