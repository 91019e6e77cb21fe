"""From request bytes to a parsed body: content encodings and JSON, with a client error (never
a crash) for anything malformed.

Kept apart from the collector's routing because every route shares it and because it is the
part that meets arbitrary bytes: each failure here names the problem in an :class:`HttpError`
the collector answers as JSON.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import orjson

from ingestion.contract import MAX_BATCH_BYTES


class HttpError(Exception):
    """A request the collector refuses: the status, a stable code and a message for people."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# zlib window bits per Content-Encoding: gzip framing, the zlib framing HTTP calls "deflate",
# and raw deflate, which some clients send under the same name.
_WBITS = {b"gzip": 31, b"x-gzip": 31, b"deflate": 15}


def _inflate(body: bytes, wbits: int, name: str) -> bytes:
    decoder = zlib.decompressobj(wbits=wbits)
    try:
        out = decoder.decompress(body, MAX_BATCH_BYTES + 1)
    except zlib.error as err:
        if wbits == 15:  # "deflate" without its zlib header: raw deflate
            return _inflate(body, -15, name)
        raise HttpError(400, f"invalid_{name}", f"body is not valid {name}: {err}") from None
    if len(out) > MAX_BATCH_BYTES:
        raise HttpError(413, "body_too_large", f"decompressed body exceeds {MAX_BATCH_BYTES} bytes")
    if not decoder.eof:
        raise HttpError(400, f"invalid_{name}", f"{name} body is truncated")
    return out


def decode_body(body: bytes, content_encoding: bytes) -> bytes:
    """The body with its Content-Encoding undone; decompression stops at ``MAX_BATCH_BYTES``
    (a small gzip bomb is a 413, not a memory blow-up)."""
    encoding = content_encoding.strip().lower()
    if encoding in (b"", b"identity"):
        return body
    if encoding in _WBITS:
        name = "gzip" if _WBITS[encoding] == 31 else "deflate"
        return _inflate(body, _WBITS[encoding], name)
    shown = encoding[:40].decode("latin-1")
    raise HttpError(
        415, "unsupported_encoding", f"Content-Encoding {shown!r} is not supported; use gzip"
    )


def parse_json(raw: bytes) -> tuple[Any, bool]:
    """The parsed body and whether it needed the lenient parser.

    orjson parses the common case. A body it refuses may still be valid UTF-8 that the stdlib
    parser reads: ``NaN``/``Infinity`` literals, ``1e400``, lone surrogate escapes (which
    ``JSON.stringify`` emits). Then the body is accepted and each event carrying such a value
    is rejected on its own (see ``privacy.json_problem``), so one bad event in a batch does
    not lose the good ones. Duplicate keys: the last value wins, as in both parsers."""
    try:
        return orjson.loads(raw), False
    except orjson.JSONDecodeError as err:
        first_error = str(err)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise HttpError(
            400, "invalid_utf8", f"body is not valid UTF-8 (byte {err.start})"
        ) from None
    try:
        return json.loads(text), True
    except RecursionError:
        raise HttpError(
            400, "invalid_json", "body nests too deeply to parse (limit: 1000 levels)"
        ) from None
    except ValueError:
        raise HttpError(400, "invalid_json", f"body is not valid JSON: {first_error}") from None
