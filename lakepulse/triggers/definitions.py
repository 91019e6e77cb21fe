"""Triggers defined as data: ``dbt_project/triggers.yml``, validated before anything uses it.

A trigger names a *kind* (a dbt model under ``models/triggers/`` that returns candidate
occurrences), the kind's parameters, which tenants it applies to, a per-user cooldown, a
holdout share and where its firings go. The file is checked as a whole before any build: a
file with a mistake is refused with a message naming the file, the trigger and the field, and
the last valid copy (kept under ``$LAKEPULSE_HOME/triggers``) keeps running, so a typo never
stops reminders that were working.

dbt reads the running definitions as data (source ``triggers.definitions``, one JSON line per
trigger, written by :func:`install`): editing the YAML changes no SQL and needs no re-parse.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lakepulse.core.settings import DBT_PROJECT_DIR, Settings, triggers_file

TRIGGER_MODELS_DIR = DBT_PROJECT_DIR / "models" / "triggers"
NAME_RE = re.compile(r"^[a-z0-9_]+$")
RESERVED_NAMES = frozenset({"definitions", "deliveries", "firings", "triggers_yml"})
"""Asset keys of the `triggers` group in Dagster that a trigger must not take."""
ARMS = ("treatment", "holdout")


class TriggerDefinitionError(ValueError):
    """A triggers file that cannot be used; the text names the file, trigger and field."""


@dataclass(frozen=True)
class Param:
    """One parameter of a kind: its type, whether it must be given, its default, and the
    smallest value that makes sense (a cart abandoned after 0 minutes is a mistake)."""

    type: type | tuple[type, ...]
    required: bool = False
    default: Any = None
    minimum: float | None = None
    choices: tuple[str, ...] | None = None


NUMBER = (int, float)

KINDS: dict[str, dict[str, Param]] = {
    "abandoned_cart": {
        "after_minutes": Param(NUMBER, required=True, minimum=1),
        "max_age_hours": Param(NUMBER, default=24, minimum=1),
    },
    "browse_no_cart": {"min_minutes": Param(NUMBER, required=True, minimum=1)},
    "bounced_visit": {"max_seconds": Param(NUMBER, required=True, minimum=1)},
    "inactive": {"days": Param(NUMBER, required=True, minimum=1)},
    "welcome": {},
    "nth_order_over": {
        "n": Param(int, required=True, minimum=1),
        "revenue": Param(NUMBER, required=True, minimum=0),
        "period": Param(str, default="quarter", choices=("month", "quarter")),
    },
    "metric_threshold": {
        "metric": Param(
            str,
            required=True,
            choices=(
                "conversion_rate",
                "visitors",
                "converting_visitors",
                "orders",
                "revenue",
                "revenue_per_visitor",
            ),
        ),
        "window_minutes": Param(int, default=5, choices=None, minimum=1),
        "below": Param(NUMBER),
        "above": Param(NUMBER),
        "min_visitors": Param(NUMBER, default=0, minimum=0),
    },
    "anomaly": {
        "metrics": Param(list, default=["conversion_rate", "revenue"]),
        "current_minutes": Param(int, default=3, minimum=1),
        "baseline_minutes": Param(int, default=60, minimum=1),
        "z_threshold": Param(NUMBER, default=4.0, minimum=0),
        "min_relative_drop": Param(NUMBER, default=0.3, minimum=0),
        "min_expected": Param(NUMBER, default=10.0, minimum=0),
    },
    "campaign_forecast": {"below": Param(NUMBER, required=True, minimum=0)},
    "custom": {"model": Param(str, required=True)},
}
"""Built-in kinds and their parameters; each kind `k` is the dbt model `trigger_k`."""

TENANT_LEVEL_KINDS = frozenset({"metric_threshold", "anomaly", "campaign_forecast"})
"""Kinds about a tenant's metric (or campaign) rather than one user: their firings have no
user_id."""

COMMON_FIELDS = {
    "name",
    "kind",
    "tenants",
    "cooldown_hours",
    "holdout",
    "measure_days",
    "destinations",
    "description",
    "min_propensity",
    "max_propensity",
}


@dataclass(frozen=True)
class Trigger:
    name: str
    kind: str
    params: dict[str, Any]
    tenants: tuple[str, ...] | None = None
    cooldown_hours: float = 24.0
    holdout: float = 0.0
    measure_days: int = 7
    destinations: tuple[str, ...] = ()
    description: str | None = None
    min_propensity: float | None = None
    max_propensity: float | None = None
    """User-level kinds only: fire only for users whose latest purchase propensity
    (mart_visitor_propensity) is at least / at most this; a user without one does not pass."""

    @property
    def model(self) -> str:
        """The dbt model whose rows are this trigger's candidate occurrences."""
        return self.params["model"] if self.kind == "custom" else f"trigger_{self.kind}"

    @property
    def tenant_level(self) -> bool:
        return self.kind in TENANT_LEVEL_KINDS

    def applies_to(self, tenant_id: str) -> bool:
        return self.tenants is None or tenant_id in self.tenants


@dataclass(frozen=True)
class Definitions:
    """A whole valid triggers file."""

    triggers: tuple[Trigger, ...] = ()
    destinations: dict[str, dict[str, Any]] = field(default_factory=dict)
    fingerprint: str = ""

    def get(self, name: str) -> Trigger | None:
        return next((t for t in self.triggers if t.name == name), None)


def assign_arm(trigger: str, tenant_id: str, user_id: str | None, holdout: float) -> str:
    """`holdout` or `treatment` for one user of one trigger: deterministic (the same user is
    always in the same arm of a trigger, in every run and after a replay) and independent
    across triggers, so holdouts of two triggers do not pick the same users."""
    digest = hashlib.sha256(f"{trigger}|{tenant_id}|{user_id}".encode()).hexdigest()
    return "holdout" if int(digest[:15], 16) / 16**15 < holdout else "treatment"


# Validation ---------------------------------------------------------------------------------


def _fail(source: str, message: str, trigger: str | None = None, name: str | None = None):
    where = source
    if trigger is not None:
        where += f": trigger {trigger!r}"
    if name is not None:
        where += f": field {name!r}"
    raise TriggerDefinitionError(f"{where}: {message}")


def _check_value(source: str, trigger: str, name: str, value: Any, spec: Param) -> Any:
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    if isinstance(value, bool) or not isinstance(value, types):
        expected = " or ".join("number" if t in NUMBER else t.__name__ for t in types)
        expected = "number" if set(types) == set(NUMBER) else expected
        _fail(source, f"must be a {expected}, got {value!r}", trigger, name)
    if spec.minimum is not None and value < spec.minimum:
        _fail(source, f"must be at least {spec.minimum:g}, got {value!r}", trigger, name)
    if spec.choices is not None and value not in spec.choices:
        _fail(source, f"must be one of {', '.join(spec.choices)}; got {value!r}", trigger, name)
    return value


def _parse_trigger(source: str, raw: Any, index: int, destinations: dict) -> Trigger:
    if not isinstance(raw, dict):
        _fail(source, f"triggers[{index}] must be a mapping with name and kind")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        _fail(
            source,
            f"triggers[{index}] needs a name of a-z, 0-9 and _ (got {name!r})",
            None,
            "name",
        )
    if name in RESERVED_NAMES:
        _fail(source, f"{name!r} is reserved ({', '.join(sorted(RESERVED_NAMES))})", name, "name")
    kind = raw.get("kind")
    if kind not in KINDS:
        _fail(source, f"unknown kind {kind!r}; known: {', '.join(KINDS)}", name, "kind")
    specs = KINDS[kind]
    unknown = sorted(set(raw) - COMMON_FIELDS - set(specs))
    if unknown:
        known = ", ".join(sorted(COMMON_FIELDS | set(specs)))
        _fail(source, f"unknown field for kind {kind} (fields: {known})", name, unknown[0])
    params = {}
    for pname, spec in specs.items():
        if pname in raw:
            params[pname] = _check_value(source, name, pname, raw[pname], spec)
        elif spec.required:
            _fail(source, f"is required for kind {kind}", name, pname)
        else:
            params[pname] = spec.default
    _check_kind(source, name, kind, params)
    tenants = raw.get("tenants")
    if tenants is not None and (
        not isinstance(tenants, list) or not all(isinstance(t, str) and t for t in tenants)
    ):
        _fail(source, "must be a list of tenant ids", name, "tenants")
    cooldown = raw.get("cooldown_hours", 24)
    _check_value(source, name, "cooldown_hours", cooldown, Param(NUMBER, minimum=0))
    holdout = raw.get("holdout", 0)
    _check_value(source, name, "holdout", holdout, Param(NUMBER, minimum=0))
    if holdout >= 1:
        _fail(source, f"must be below 1 (a share of users), got {holdout!r}", name, "holdout")
    measure_days = raw.get("measure_days", 7)
    _check_value(source, name, "measure_days", measure_days, Param(int, minimum=1))
    names = raw.get("destinations", [])
    if not isinstance(names, list) or not all(isinstance(d, str) for d in names):
        _fail(source, "must be a list of destination names", name, "destinations")
    for dest in names:
        if dest not in destinations:
            known = ", ".join(sorted(destinations)) or "none are defined"
            _fail(
                source,
                f"unknown destination {dest!r} (destinations: {known})",
                name,
                "destinations",
            )
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        _fail(source, "must be text", name, "description")
    bounds = {}
    for bound in ("min_propensity", "max_propensity"):
        value = raw.get(bound)
        if value is None:
            continue
        if kind in TENANT_LEVEL_KINDS:
            _fail(source, f"applies to user-level kinds only, not {kind}", name, bound)
        _check_value(source, name, bound, value, Param(NUMBER, minimum=0))
        if value > 1:
            _fail(source, f"must be a probability between 0 and 1, got {value!r}", name, bound)
        bounds[bound] = float(value)
    if bounds.get("min_propensity", 0.0) > bounds.get("max_propensity", 1.0):
        _fail(source, "must not exceed max_propensity", name, "min_propensity")
    return Trigger(
        name=name,
        kind=kind,
        params=params,
        tenants=tuple(tenants) if tenants is not None else None,
        cooldown_hours=float(cooldown),
        holdout=float(holdout),
        measure_days=measure_days,
        destinations=tuple(names),
        description=description,
        **bounds,
    )


def _check_kind(source: str, name: str, kind: str, params: dict) -> None:
    """Rules across one kind's parameters."""
    if kind == "metric_threshold" and (params["below"] is None) == (params["above"] is None):
        _fail(source, "needs exactly one of below or above", name, "below")
    if kind == "anomaly":
        metrics = params["metrics"]
        allowed = {"conversion_rate", "revenue"}
        if not metrics or not all(m in allowed for m in metrics):
            _fail(source, f"must list metrics among {sorted(allowed)}", name, "metrics")
    if kind == "custom":
        model = params["model"]
        if not NAME_RE.match(model) or model.startswith("trigger_"):
            _fail(
                source,
                "must name your own model (a-z, 0-9, _; trigger_* are the built-in kinds)",
                name,
                "model",
            )
        if not any((TRIGGER_MODELS_DIR / f"{model}.{ext}").exists() for ext in ("sql", "py")):
            _fail(source, f"no dbt model {model} under models/triggers/", name, "model")


def parse(text: str, source: str = "triggers.yml") -> Definitions:
    """A triggers file's text as :class:`Definitions`; raises
    :class:`TriggerDefinitionError` on the first mistake."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        _fail(source, f"is not valid YAML: {err}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        _fail(source, "must be a mapping with version, destinations and triggers")
    unknown = sorted(set(data) - {"version", "destinations", "triggers"})
    if unknown:
        _fail(source, f"unknown top-level field {unknown[0]!r}")
    if data.get("version", 1) != 1:
        _fail(source, f"version {data.get('version')!r} is not supported (use 1)")
    destinations = data.get("destinations") or {}
    if not isinstance(destinations, dict):
        _fail(source, "destinations must be a mapping of name to settings")
    for dest, spec in destinations.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            _fail(source, f"destination {dest!r} needs a type")
    raw_triggers = data.get("triggers") or []
    if not isinstance(raw_triggers, list):
        _fail(source, "triggers must be a list")
    triggers: list[Trigger] = []
    for index, raw in enumerate(raw_triggers):
        trigger = _parse_trigger(source, raw, index, destinations)
        if any(t.name == trigger.name for t in triggers):
            _fail(source, "is defined twice", trigger.name, "name")
        triggers.append(trigger)
    return Definitions(
        triggers=tuple(triggers),
        destinations=destinations,
        fingerprint=hashlib.sha256(text.encode()).hexdigest(),
    )


def load(path: Path | None = None) -> Definitions:
    """The file's definitions (no file: none)."""
    path = path or triggers_file()
    if not path.exists():
        return Definitions()
    return parse(path.read_text(), str(path))


# The running copy ---------------------------------------------------------------------------


def installed_path(settings: Settings) -> Path:
    """The last valid triggers file: what fires when the project's file is refused."""
    return settings.triggers_dir / "triggers.yml"


def dbt_definitions_path(settings: Settings) -> Path:
    """What dbt's source `triggers.definitions` reads: one JSON line per running trigger."""
    from lakepulse.warehouse.trigger_tables import definitions_file  # Arrow: not to parse a file

    return definitions_file(settings)


@dataclass(frozen=True)
class Installed:
    """The definitions running after :func:`install`, and why the file was refused (if)."""

    definitions: Definitions
    error: str | None = None
    changed: bool = False


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def running(settings: Settings) -> Definitions:
    """The last valid definitions installed in this home (none before the first install)."""
    path = installed_path(settings)
    if not path.exists():
        return Definitions()
    return parse(path.read_text(), str(path))


def install(settings: Settings, source: Path | None = None) -> Installed:
    """Validate ``source`` and make it the running definitions; a file with a mistake is
    refused (the error says where) and the previous valid copy keeps running. Called before
    every build and every firing, so dbt never reads a file that was not validated."""
    source = source or triggers_file()
    previous = running(settings)
    dbt_file = dbt_definitions_path(settings)
    try:
        definitions = load(source)
    except TriggerDefinitionError as err:
        if not dbt_file.exists():
            _write_atomic(dbt_file, _dbt_lines(previous))
        return Installed(previous, str(err))
    changed = definitions.fingerprint != previous.fingerprint or not dbt_file.exists()
    if changed:
        # The dbt copy first: a crash in between leaves the old YAML, re-installed next time.
        _write_atomic(dbt_file, _dbt_lines(definitions))
        _write_atomic(installed_path(settings), source.read_text() if source.exists() else "")
    return Installed(definitions, None, changed)


def _dbt_lines(definitions: Definitions) -> str:
    return "".join(
        json.dumps(
            {
                "trigger": t.name,
                "kind": t.kind,
                "tenants": list(t.tenants) if t.tenants is not None else None,
                "params": t.params,
            }
        )
        + "\n"
        for t in definitions.triggers
    )
