"""Destinations of trigger firings, as declared under ``destinations:`` in ``triggers.yml``.

Each destination is a name mapped to its fields; ``type`` says which kind it is:

``webhook``  ``url``, ``secret`` (HMAC key of the signature), ``allow_private`` (default
             false), ``timeout_seconds`` (default 10)
``email``    ``host``, ``port`` (default 587), ``starttls`` (default true) or
             ``allow_plain: true``, ``username``, ``password``, ``from``, ``to`` (one address or
             a list), ``subject_template`` and ``body_template`` (Jinja files beside the YAML),
             ``timeout_seconds``
``slack``    ``url`` (the incoming-webhook URL), ``allow_private``, ``timeout_seconds``

Every kind also takes ``max_attempts`` (default 10: the retry schedule's length) and
``concurrency`` (default 4: requests in flight to this destination at once).

Any string value may be ``${NAME}``: it is read from the environment when a delivery is made,
never when the file is parsed, so the file can be committed and a secret rotated without a
redeploy; resolved values are never logged nor written to a table. ``secret`` and
``password`` must be such references: a literal secret in a committed file is refused.

Errors name the file, the destination and the field, so one pass of ``lakepulse triggers
validate`` lists everything to fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from jinja2.sandbox import SandboxedEnvironment

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""``${NAME}``: a value read from the environment at delivery time."""

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_ATTEMPTS = 10
DEFAULT_CONCURRENCY = 4

_COMMON = {"type", "timeout_seconds", "max_attempts", "concurrency"}
FIELDS: dict[str, set[str]] = {
    "webhook": _COMMON | {"url", "secret", "allow_private"},
    "slack": _COMMON | {"url", "allow_private"},
    "email": _COMMON
    | {
        "host",
        "port",
        "starttls",
        "allow_plain",
        "username",
        "password",
        "from",
        "to",
        "subject_template",
        "body_template",
    },
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "webhook": ("url", "secret"),
    "slack": ("url",),
    "email": ("host", "from", "to", "subject_template", "body_template"),
}
SECRET_FIELDS = ("secret", "password")
"""Fields that must come from the environment (``${NAME}``), never from the file itself."""


class DestinationError(ValueError):
    """The destinations mapping is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


class UnresolvedSecret(LookupError):
    """A ``${NAME}`` value whose variable is not set in the deliverer's environment."""


@dataclass(frozen=True)
class Destination:
    """One parsed destination. String fields keep their ``${NAME}`` references; call
    :meth:`resolve` at delivery time for the real value."""

    name: str
    type: str
    fields: Mapping[str, Any]
    base_dir: Path
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    concurrency: int = DEFAULT_CONCURRENCY
    _templates: dict[str, jinja2.Template] = field(default_factory=dict, compare=False, repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def resolve(self, key: str, env: Mapping[str, str] | None = None) -> Any:
        """The field's value with every ``${NAME}`` replaced from the environment."""
        return resolve_value(self.fields.get(key), os.environ if env is None else env)

    @property
    def allow_private(self) -> bool:
        return bool(self.fields.get("allow_private", False))

    def template(self, key: str) -> jinja2.Template:
        """The compiled Jinja template named by ``subject_template`` / ``body_template``."""
        if key not in self._templates:
            path = self.base_dir / str(self.fields[key])
            self._templates[key] = _jinja().from_string(path.read_text())
        return self._templates[key]


def resolve_value(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, list):
        return [resolve_value(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise UnresolvedSecret(f"environment variable {name} is not set")
        return env[name]

    return ENV_REFERENCE.sub(lookup, value)


def validate_destinations(raw_mapping: Any, source_path: str | Path) -> list[str]:
    """Every problem of a ``destinations:`` mapping, each naming the file, the destination and
    the field; an empty list means the mapping is valid."""
    errors: list[str] = []
    _parse(raw_mapping, Path(source_path), errors)
    return errors


def parse_destinations(raw_mapping: Any, source_path: str | Path) -> dict[str, Destination]:
    """The destinations by name; raises :class:`DestinationError` listing every problem."""
    errors: list[str] = []
    parsed = _parse(raw_mapping, Path(source_path), errors)
    if errors:
        raise DestinationError(errors)
    return parsed


def load_destinations(path: str | Path) -> dict[str, Destination]:
    """The ``destinations:`` of a triggers file (none when the file or the key is absent)."""
    import yaml

    path = Path(path)
    if not path.exists():
        return {}
    document = yaml.safe_load(path.read_text()) or {}
    if not isinstance(document, dict):
        raise DestinationError([f"{path}: expected a mapping with `destinations:` and `triggers:`"])
    return parse_destinations(document.get("destinations") or {}, path)


def _parse(raw: Any, path: Path, errors: list[str]) -> dict[str, Destination]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append(f"{path}: `destinations` must be a mapping of name to fields")
        return {}
    parsed = {}
    for name, spec in raw.items():
        where = f"{path}: destination {name!r}"
        before = len(errors)
        destination = _parse_one(str(name), spec, path, where, errors)
        if destination is not None and len(errors) == before:
            parsed[str(name)] = destination
    return parsed


def _parse_one(
    name: str, spec: Any, path: Path, where: str, errors: list[str]
) -> Destination | None:
    if not isinstance(spec, dict):
        errors.append(f"{where}: expected a mapping of fields")
        return None
    kind = spec.get("type")
    if kind not in FIELDS:
        errors.append(f"{where}: field 'type': must be one of webhook, email, slack (got {kind!r})")
        return None
    for key in sorted(set(spec) - FIELDS[kind]):
        errors.append(
            f"{where}: field {key!r}: not a {kind} field (known: {', '.join(sorted(FIELDS[kind]))})"
        )
    for key in REQUIRED[kind]:
        if spec.get(key) in (None, "", []):
            errors.append(f"{where}: field {key!r}: required for a {kind} destination")
    for key in SECRET_FIELDS:
        value = spec.get(key)
        if value is not None and not (isinstance(value, str) and ENV_REFERENCE.fullmatch(value)):
            errors.append(
                f"{where}: field {key!r}: must be an environment reference like ${{LAKEPULSE_"
                f"{name.upper().replace('-', '_')}_{key.upper()}}}, not a literal secret"
            )
    for key, value in spec.items():
        if isinstance(value, str) and "${" in value and not _only_references(value):
            errors.append(f"{where}: field {key!r}: malformed ${{NAME}} reference")
    for key in ("allow_private", "starttls", "allow_plain"):
        if key in spec and not isinstance(spec[key], bool):
            errors.append(f"{where}: field {key!r}: must be true or false")
    numbers = _numbers(spec, where, errors)
    if kind in ("webhook", "slack"):
        _check_url(spec.get("url"), where, errors)
    if kind == "email":
        _check_email(spec, path.parent, where, errors)
    return Destination(name=name, type=kind, fields=dict(spec), base_dir=path.parent, **numbers)


def _numbers(spec: dict, where: str, errors: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    limits = {
        "timeout_seconds": (float, 0.001, 300.0),
        "max_attempts": (int, 1, 50),
        "concurrency": (int, 1, 64),
    }
    for key, (kind, low, high) in limits.items():
        if key not in spec:
            continue
        value = spec[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            errors.append(f"{where}: field {key!r}: must be a number from {low:g} to {high:g}")
        elif kind is int and value != int(value):
            errors.append(f"{where}: field {key!r}: must be a whole number")
        else:
            out[key] = kind(value)
    return out


def _only_references(value: str) -> bool:
    return "${" not in ENV_REFERENCE.sub("", value)


def _check_url(url: Any, where: str, errors: list[str]) -> None:
    if not isinstance(url, str) or not url:
        return
    if ENV_REFERENCE.fullmatch(url):
        return  # checked when resolved, at delivery time
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors.append(f"{where}: field 'url': must be an http:// or https:// URL with a host")


def _check_email(spec: dict, base_dir: Path, where: str, errors: list[str]) -> None:
    port = spec.get("port", 587)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        errors.append(f"{where}: field 'port': must be a TCP port number")
    if not spec.get("starttls", True) and not spec.get("allow_plain", False):
        errors.append(
            f"{where}: field 'starttls': false sends in clear text: set `allow_plain: true` "
            "as well if the server really offers no STARTTLS"
        )
    recipients = spec.get("to")
    if recipients is not None and not (
        isinstance(recipients, str)
        or (isinstance(recipients, list) and all(isinstance(r, str) for r in recipients))
    ):
        errors.append(f"{where}: field 'to': one address or a list of addresses")
    for key in ("subject_template", "body_template"):
        name = spec.get(key)
        if not isinstance(name, str) or not name:
            continue
        template_path = base_dir / name
        if not template_path.is_file():
            errors.append(f"{where}: field {key!r}: no template file {template_path}")
            continue
        try:
            _jinja().from_string(template_path.read_text())
        except jinja2.TemplateSyntaxError as err:
            errors.append(f"{where}: field {key!r}: {template_path} line {err.lineno}: {err}")


_JINJA: SandboxedEnvironment | None = None


def _jinja() -> SandboxedEnvironment:
    """Sandboxed (templates are data an analyst edits) and strict: a misspelt variable fails
    the delivery instead of mailing an empty field."""
    global _JINJA
    if _JINJA is None:
        _JINJA = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    return _JINJA
