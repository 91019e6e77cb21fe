"""Triggers' `min_propensity` / `max_propensity` (issue #27): `lakepulse triggers fire` on a
real replica whose candidates and purchase propensities are written here as tables, so the
expected firings are known without the code under test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest
import yaml

from lakepulse.triggers.definitions import TriggerDefinitionError, parse
from lakepulse.triggers.firing import fire

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SCORES = {"ann": 0.9, "bob": 0.5, "cy": 0.1}  # dee has no score


def replica(settings) -> None:
    """Candidates of kind abandoned_cart for four users, and their sessions' propensities
    (ann's latest session scored lower than her earlier one: the latest counts)."""
    settings.replica_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.replica_path)) as conn:
        conn.execute("create schema triggers")
        conn.execute("create schema marts")
        conn.execute(
            "create table triggers.trigger_abandoned_cart (trigger varchar, tenant_id varchar, "
            "user_id varchar, occurrence_key varchar, occurred_at timestamptz, payload varchar)"
        )
        for trigger in ("likely", "unlikely", "anyone"):
            for user in ("ann", "bob", "cy", "dee"):
                conn.execute(
                    "insert into triggers.trigger_abandoned_cart values (?, 'acme', ?, 'cart1', ?, '{}')",
                    [trigger, user, NOW - timedelta(minutes=40)],
                )
        conn.execute(
            "create table marts.mart_visitor_propensity (tenant_id varchar, user_key varchar, "
            "session_id varchar, session_start_at timestamptz, session_end_at timestamptz, "
            "propensity double, model_fitted_at timestamptz)"
        )
        for user, score in SCORES.items():
            conn.execute(
                "insert into marts.mart_visitor_propensity values ('acme', ?, ?, ?, ?, ?, ?)",
                [user, f"s-{user}", NOW - timedelta(hours=1), NOW, score, NOW],
            )
        conn.execute(
            "insert into marts.mart_visitor_propensity values "
            "('acme', 'ann', 's-old', ?, ?, 0.05, ?)",
            [NOW - timedelta(hours=5), NOW - timedelta(hours=4), NOW],
        )


def triggers_file(tmp_path):
    path = tmp_path / "triggers.yml"
    base = {"kind": "abandoned_cart", "after_minutes": 30}
    path.write_text(
        yaml.safe_dump(
            {
                "triggers": [
                    {"name": "likely", **base, "min_propensity": 0.5},
                    {"name": "unlikely", **base, "max_propensity": 0.3},
                    {"name": "anyone", **base},
                ]
            }
        )
    )
    return path


def test_only_users_inside_the_propensity_range_fire(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEPULSE_TRIGGERS_FILE", str(triggers_file(tmp_path)))
    replica(settings)
    result = fire(settings, dry_run=True, now=NOW)
    fired = {name: sorted(r["user_id"] for r in o.fired) for name, o in result.outcomes.items()}
    assert fired == {
        "likely": ["ann", "bob"],
        "unlikely": ["cy"],
        "anyone": ["ann", "bob", "cy", "dee"],
    }
    assert result.outcomes["likely"].outside_propensity == 2  # cy (0.1), dee (no score)
    assert result.outcomes["unlikely"].outside_propensity == 3
    assert result.outcomes["anyone"].outside_propensity == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_propensity": 1.5}, "between 0 and 1"),
        ({"max_propensity": -0.1}, "must be at least 0"),
        ({"min_propensity": 0.8, "max_propensity": 0.2}, "must not exceed max_propensity"),
        ({"min_propensity": "high"}, "number"),
    ],
)
def test_bad_propensity_bounds_are_refused(fields, message):
    text = yaml.safe_dump(
        {"triggers": [{"name": "t", "kind": "abandoned_cart", "after_minutes": 30, **fields}]}
    )
    with pytest.raises(TriggerDefinitionError, match=message):
        parse(text)


def test_tenant_level_kinds_take_no_propensity_bound():
    text = yaml.safe_dump(
        {
            "triggers": [
                {"name": "t", "kind": "anomaly", "min_propensity": 0.5},
            ]
        }
    )
    with pytest.raises(TriggerDefinitionError, match="user-level kinds only"):
        parse(text)
