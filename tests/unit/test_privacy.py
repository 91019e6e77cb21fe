"""One test per privacy rule (ingestion/privacy.py)."""

import hmac
import json

from ingestion.privacy import device_class, hash_pii, hmac_pads, scrub, strip_url

SECRET = b"tenant-secret"
# Fixed vectors computed outside the code, once, with
#   printf '%s' VALUE | openssl dgst -sha256 -hmac tenant-secret
# over the normalised value (lower-cased e-mail; a phone's digits and leading +).
ADA_EMAIL = "082338df7a8747e8b2ef50a4f9097a007e01f63fffbe656298ae431b09e956b1"
ADA_PHONE = "f552ffe181d14624caf2b291b0e3c807163548458c3333af64fb43146fa14b02"
BOB_EMAIL = "36bcd81f75ab3d05c8a3f91ccc95e17868a603f91399d6067f7e2df7151f6a08"


def test_ip_is_dropped():
    assert "ip" not in scrub({"ip": "203.0.113.9", "locale": "en-US"}, SECRET)


def test_email_and_phone_traits_are_hmac_hashed_with_tenant_secret():
    traits = scrub(
        {"email": "Ada@Example.com ", "phone": "+44 (20) 7946-0958", "plan": "pro"}, SECRET
    )
    assert traits["plan"] == "pro"
    assert traits["email"] == ADA_EMAIL
    assert traits["phone"] == ADA_PHONE
    assert "Ada" not in json.dumps(traits) and "7946" not in json.dumps(traits)


def test_same_email_hashes_differently_for_another_tenant():
    assert hash_pii("a@b.co", b"one") != hash_pii("a@b.co", b"two")


def test_hash_pii_is_hmac_sha256_of_the_normalised_value():
    assert hash_pii(" Ada@Example.COM ", SECRET) == ADA_EMAIL
    assert hash_pii("+44 (20) 7946-0958", SECRET) == ADA_PHONE


def test_hmac_pads_give_hmac_sha256_for_secrets_of_any_length():
    """The compiled pass hashes from the secret's padded keys (``rowpass._hashed``): the same
    digests as HMAC-SHA256, a secret longer than SHA-256's block (hashed first) too."""

    def hashed(secret: bytes, value: bytes) -> str:
        inner, outer = (state.copy() for state in hmac_pads(secret))
        inner.update(value)
        outer.update(inner.digest())
        return outer.hexdigest()

    assert hashed(SECRET, b"ada@example.com") == ADA_EMAIL
    for size in (0, 1, 32, 63, 64, 65, 200):
        secret = bytes(range(size % 256)) + b"k" * (size // 256)
        assert hashed(secret, b"bob@x.io") == hmac.digest(secret, b"bob@x.io", "sha256").hex()
    assert hmac_pads(SECRET) is hmac_pads(SECRET)  # made once a secret


def test_names_and_addresses_are_dropped():
    out = scrub({"firstName": "Ada", "last_name": "L", "address": {"city": "x"}, "age": 36}, SECRET)
    assert out == {"age": 36}


def test_pii_query_parameters_are_stripped_from_urls():
    url = "https://shop.example/p?email=ada%40x.com&utm_source=news&token=abc&q=shoes"
    assert strip_url(url) == "https://shop.example/p?utm_source=news&q=shoes"


def test_email_values_in_any_query_parameter_are_stripped():
    assert strip_url("https://s.example/?ref=ada@example.com&x=1") == "https://s.example/?x=1"


def test_credentials_in_url_are_removed():
    assert strip_url("https://user:pw@s.example/a") == "https://s.example/a"


def test_urls_nested_in_payloads_are_stripped():
    out = scrub(
        {
            "context": {
                "page": {"url": "https://s.example/?phone=123&a=1", "search": "?email=x@y.z"}
            }
        },
        SECRET,
    )
    assert out["context"]["page"] == {"url": "https://s.example/?a=1", "search": ""}


def test_user_agent_is_reduced_to_device_class():
    out = scrub({"userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148"}, SECRET)
    assert out == {"device_class": "mobile"}


def test_device_classes():
    assert device_class("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)") == "tablet"
    assert device_class("Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0") == "desktop"
    assert device_class("Googlebot/2.1 (+http://www.google.com/bot.html)") == "bot"
    assert device_class(None) == "unknown"
    assert device_class(None, "ios") == "mobile"


def test_bare_email_strings_anywhere_are_hashed():
    out = scrub({"note": "ada@example.com", "tags": ["x", "bob@example.org"]}, SECRET)
    assert out["note"] == ADA_EMAIL
    assert out["tags"][1] == BOB_EMAIL


def test_a_flag_under_a_hashed_key_is_kept():
    # Chromium's context.userAgentData.mobile is a boolean, not a phone number.
    assert scrub({"mobile": False, "phone": "+44 1"}, SECRET)["mobile"] is False


def test_scrub_stops_at_the_nesting_limit_instead_of_recursing():
    import pytest

    from ingestion.privacy import MAX_NESTING, TooDeep

    value: dict = {}
    for _ in range(5000):  # deeper than Python's recursion limit
        value = {"k": value}
    with pytest.raises(TooDeep, match=str(MAX_NESTING)):
        scrub(value, SECRET)
