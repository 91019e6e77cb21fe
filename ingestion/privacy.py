"""Privacy rules: the one place that decides what personal data may be stored.

Everything the collector writes to the landing log passes through :func:`scrub`, so no raw PII
reaches disk: IP addresses are dropped, emails and phone numbers are replaced by a per-tenant
HMAC (joinable within a tenant, useless across tenants or without the secret), direct
identifiers such as names and addresses are dropped, PII query parameters are stripped from
URLs, and user agents are reduced to a device class.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HASHED_KEYS = frozenset(
    {"email", "phone", "mobile", "phone_number", "phonenumber", "email_address"}
)
"""Keys whose values are HMAC-hashed: stable pseudonyms let analysts join on them."""

DROPPED_KEYS = frozenset(
    {
        "ip",
        "ipaddress",
        "ip_address",
        "name",
        "firstname",
        "first_name",
        "lastname",
        "last_name",
        "address",
        "street",
        "birthday",
        "dateofbirth",
        "date_of_birth",
        "ssn",
        "password",
        "creditcard",
        "credit_card",
        "card_number",
        "writekey",
    }
)
"""Keys removed outright: no analytics question needs them (``writeKey``: browser SDKs put the
tenant's credential in the body)."""

MAX_NESTING = 32
"""How deep properties, traits and context may nest (objects and arrays inside the field).
Deeper values make the event a contract violation; :func:`scrub` stops there instead of
recursing without bound."""


class TooDeep(ValueError):
    """A value nests deeper than :data:`MAX_NESTING`; the contract turns it into a rejection."""


PII_QUERY_PARAMS = frozenset(
    {
        "email",
        "e-mail",
        "mail",
        "phone",
        "tel",
        "name",
        "firstname",
        "first_name",
        "lastname",
        "last_name",
        "address",
        "token",
        "access_token",
        "auth",
        "password",
        "ssn",
        "zip",
        "postcode",
    }
)
"""Query parameters stripped from every URL (page url, referrer, search strings)."""

URL_KEYS = frozenset({"url", "referrer", "search", "href", "referringurl"})

_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MOBILE_RE = re.compile(r"Mobi|iPhone|iPod|Android.*Mobile|Windows Phone|BlackBerry", re.I)
_TABLET_RE = re.compile(r"iPad|Tablet|Android(?!.*Mobile)|Kindle|Silk", re.I)
_BOT_RE = re.compile(r"bot|crawl|spider|slurp|headless|monitor", re.I)


def _norm_key(key: str) -> str:
    return key.lower().replace("-", "").replace(" ", "")


def hash_pii(value: Any, secret: bytes) -> str:
    """HMAC-SHA256 of a normalised email or phone, so the same person hashes the same way
    (``rowpass._hashed`` is its e-mail case compiled: change the two together)."""
    text = str(value).strip()
    text = text.lower() if "@" in text else re.sub(r"[^\d+]", "", text) or text.lower()
    return hmac.digest(secret, text.encode(), "sha256").hex()  # hmac.new's hexdigest, one call


@lru_cache(maxsize=16384)
def strip_url(url: str) -> str:
    """Remove PII query parameters (and any e-mail address-looking value) from a URL."""
    if "?" not in url and "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if _norm_key(k) not in PII_QUERY_PARAMS and not _EMAIL_RE.fullmatch(v)
    ]
    netloc = parts.netloc.rsplit("@", 1)[-1]  # credentials in the authority part
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), ""))


def strip_search(search: str) -> str:
    """Strip a bare ``?a=b`` search string the way :func:`strip_url` strips a URL's query."""
    stripped = strip_url("x:" + (search if search.startswith("?") else "?" + search))
    return stripped[2:]


@lru_cache(maxsize=4096)
def device_class(user_agent: str | None, device_type: str | None = None) -> str:
    """Reduce a user agent to mobile / tablet / desktop / bot / unknown."""
    if device_type:
        kind = str(device_type).lower()
        if kind in {"mobile", "phone", "ios", "android"}:
            return "mobile"
        if kind in {"tablet", "ipad"}:
            return "tablet"
        if kind in {"desktop", "computer", "web"}:
            return "desktop"
    if not user_agent:
        return "unknown"
    if _BOT_RE.search(user_agent):
        return "bot"
    if _TABLET_RE.search(user_agent):
        return "tablet"
    if _MOBILE_RE.search(user_agent):
        return "mobile"
    return "desktop"


@lru_cache(maxsize=8192)
def _rule(key: str) -> str:
    """What :func:`scrub` does with a key's value; keys repeat across events, so cached."""
    norm = _norm_key(key)
    if norm in DROPPED_KEYS:
        return "drop"
    if norm in HASHED_KEYS:
        return "hash"
    if norm == "useragent":
        return "user_agent"
    if norm == "search":
        return "search"
    if norm in URL_KEYS:
        return "url"
    return ""


def scrub(value: Any, secret: bytes, depth: int = 0) -> Any:
    """Return a copy of a JSON value with every privacy rule applied, recursively.

    Raises :class:`TooDeep` past :data:`MAX_NESTING` levels: recursion is bounded, whatever
    the sender nests (see :func:`json_safe` for a copy that can always be scrubbed)."""
    if depth > MAX_NESTING:
        raise TooDeep(f"nested deeper than {MAX_NESTING} levels")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            rule = _rule(key)
            if not rule:
                kind = type(item)  # plain leaves and text without "@" inline: no call
                if kind in _PLAIN or (kind is str and "@" not in item):
                    out[key] = item
                else:
                    out[key] = scrub(item, secret, depth + 1)
            elif rule == "drop":
                continue
            elif rule == "hash" and type(item) in _HASHABLE:
                out[key] = hash_pii(item, secret)
            elif rule == "hash" and type(item) is bool:
                out[key] = item  # a flag (userAgentData.mobile) is no phone number
            elif rule == "user_agent" and isinstance(item, str):
                out["device_class"] = device_class(item)
            elif rule == "url" and isinstance(item, str):
                out[key] = strip_url(item)
            elif rule == "search" and isinstance(item, str):
                out[key] = strip_search(item)
            else:
                out[key] = scrub(item, secret, depth + 1)
        return out
    if isinstance(value, list):
        return [scrub(item, secret, depth + 1) for item in value]
    if isinstance(value, str) and "@" in value and _EMAIL_RE.fullmatch(value.strip()):
        return hash_pii(value, secret)
    return value


_SAFE_KEYS: set[str] = set()
"""Keys no rule applies to (:func:`_rule` is empty), learnt as they are seen (bounded)."""
_MAX_SAFE_KEYS = 65_536

_DEVICE_CLASSES: dict[str | None, str] = {}
""":func:`device_class` of the user agents seen (without a device type), for the compiled pass:
a dict lookup, not ``lru_cache``'s call (whose wrapper has no fast call in this Python).
Emptied when it reaches ``_MAX_MEMO`` entries."""
_STRIPPED_URLS: dict[str, str] = {}
""":func:`strip_url` of the URLs seen (those it may change), the same way."""
_MAX_MEMO = 16_384
_MAX_MEMO_CHARS = 2_048
"""The longest text the memos keep (a sender's long URLs must not hold megabytes)."""
_HMAC_PADS: dict[bytes, tuple[Any, Any]] = {}
"""Per secret, SHA-256 states after HMAC's inner and outer padded keys (:func:`hmac_pads`)."""
_HMAC_BLOCK = 64
_INNER = bytes(x ^ 0x36 for x in range(256))
_OUTER = bytes(x ^ 0x5C for x in range(256))


def hmac_pads(secret: bytes) -> tuple[Any, Any]:
    """The SHA-256 states of HMAC-SHA256 (RFC 2104) with key ``secret`` once its inner and
    outer padded keys are hashed: a hash's HMAC is then two copies, two updates and two
    digests (``rowpass._hashed``), not OpenSSL's HMAC set up anew for each value; the digest
    is ``hmac.digest(secret, value, "sha256")``'s (``tests/unit/test_privacy.py`` checks)."""
    pads = _HMAC_PADS.get(secret)
    if pads is None:
        key = hashlib.sha256(secret).digest() if len(secret) > _HMAC_BLOCK else secret
        key = key.ljust(_HMAC_BLOCK, b"\0")
        pads = (
            hashlib.sha256(key.translate(_INNER)),
            hashlib.sha256(key.translate(_OUTER)),
        )
        if len(_HMAC_PADS) >= _MAX_MEMO:
            _HMAC_PADS.clear()
        _HMAC_PADS[secret] = pads
    return pads


def unchanged_by_scrub(value: dict, depth: int = 0) -> bool:
    """Whether :func:`scrub` would return an equal copy of ``value``: no key anywhere in it
    has a rule and no string holds an ``@``. A cheaper walk than the copy (keys are tested as
    a set against those known to be free of rules), for the compiled pass; False for a value
    nested near :data:`MAX_NESTING` (:func:`scrub` decides those). ``rowpass._unchanged_walk``
    is the same walk, compiled: change the two together."""
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
    for item in items:
        kind = type(item)
        if kind is str:
            if "@" in item:
                return False
        elif kind is dict:
            if not unchanged_by_scrub(item, depth + 1):
                return False
        elif kind is list and (
            depth + 1 > MAX_NESTING - 2 or not _items_unchanged(item, depth + 1)
        ):
            return False
    return True


def too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether a parsed value nests containers more than ``limit`` levels below itself; a loop,
    not recursion, for values nested thousands deep."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if type(item) is dict:
            stack.extend((v, depth + 1) for v in item.values() if type(v) in _CONTAINERS)
        elif type(item) is list:
            stack.extend((v, depth + 1) for v in item if type(v) in _CONTAINERS)
    return False


_CONTAINERS = frozenset({dict, list})
TRUNCATED = "[truncated: nested too deep]"
_INT64 = (-(2**63), 2**64 - 1)


def _clean_text(text: str) -> str:
    """The text with lone surrogates (which JSON escapes can carry) replaced by U+FFFD."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def json_safe(value: Any, depth: int = 0) -> Any:
    """A copy of a parsed value that orjson can always write and :func:`scrub` can always
    walk: subtrees past :data:`MAX_NESTING` become a marker, non-finite or out-of-range
    numbers become their text, lone surrogates become U+FFFD. For quarantined payloads,
    which must be stored whatever they hold."""
    if isinstance(value, dict):
        if depth >= MAX_NESTING:
            return TRUNCATED
        return {_clean_text(str(k)): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        if depth >= MAX_NESTING:
            return TRUNCATED
        return [json_safe(item, depth + 1) for item in value]
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    return value


def json_problem(value: Any, depth: int = 0) -> str | None:
    """Why a value parsed leniently (the stdlib parser, after orjson refused the body) breaks
    the contract, or None: ``NaN``/``Infinity`` literals and numbers out of range (``1e400``)
    are not JSON numbers, lone surrogates are not text, and nesting is bounded."""
    if isinstance(value, dict):
        if depth > MAX_NESTING:
            return f"nested deeper than {MAX_NESTING} levels"
        for key, item in value.items():
            problem = json_problem(key, depth + 1) or json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, list):
        if depth > MAX_NESTING:
            return f"nested deeper than {MAX_NESTING} levels"
        for item in value:
            if problem := json_problem(item, depth + 1):
                return problem
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"number {value} is not a finite JSON number (NaN, Infinity or out of range)"
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not (_INT64[0] <= value <= _INT64[1])
    ):
        return "integer out of the 64-bit range"
    if isinstance(value, str) and _clean_text(value) is not value:
        return "text holds a lone UTF-16 surrogate (not valid Unicode)"
    return None


_PLAIN = frozenset({int, float, bool, type(None)})
_HASHABLE = frozenset({str, int, float})
"""Leaf types no rule applies to (strings are checked for e-mail addresses)."""
