"""mart_trigger_impact and fct_trigger_deliveries through the real dbt project: firings (test
data in the firings Delta table) against orders from simulated traffic loaded into bronze."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml

from lakepulse.demo.sink import WebhookSink
from lakepulse.triggers.delivery import deliver_pass
from tests.conftest import land_simulated
from tests.delivery_support import webhook, write_firings

pytestmark = pytest.mark.integration

SELECT = ("--select", "mart_trigger_impact", "fct_trigger_deliveries", "+stg_orders")


def a_firing(tenant: str, user: str, fired_at, arm: str, trigger: str = "winback") -> dict:
    return {
        "firing_id": f"{trigger}:{tenant}:{user}:{fired_at.isoformat()}",
        "tenant_id": tenant,
        "trigger": trigger,
        "kind": "inactive",
        "user_id": user,
        "fired_at": fired_at,
        "occurred_at": fired_at,
        "arm": arm,
        "payload": "{}",
        "destinations": json.dumps(["hook"]),
    }


def test_impact_per_arm_with_the_experiment_statistics(settings, workspace, tmp_path, monkeypatch):
    triggers = tmp_path / "triggers.yml"
    triggers.write_text(
        yaml.safe_dump(
            {
                "destinations": {"hook": webhook("http://127.0.0.1:9/none")},
                "triggers": [
                    {"name": "winback", "kind": "inactive", "holdout": 0.5, "measure_days": 3}
                ],
            }
        )
    )
    monkeypatch.setenv("LAKEPULSE_TRIGGERS_FILE", str(triggers))
    land_simulated(settings, 8000)
    workspace.ingest()
    workspace.build(*SELECT)
    buyers = workspace.warehouse_sql(
        "select tenant_id, user_id, min(ordered_at) from staging.stg_orders "
        "where tenant_id = 'acme' and user_id is not null group by all order by 2"
    )
    others = workspace.warehouse_sql(
        "select distinct tenant_id, user_id from staging.stg_events where tenant_id = 'acme' "
        "and user_id is not null and user_id not in (select user_id from staging.stg_orders "
        "where user_id is not null) order by 2"
    )
    assert len(buyers) >= 40 and len(others) >= 40, (len(buyers), len(others))
    # A planted effect: the treatment's users order within their window, the holdout's do not
    # (non-buyers, and buyers fired only after their orders).
    arm_size = min(len(buyers) - 10, len(others) + 10)
    late = buyers[-10:]
    rows = [
        a_firing(t, u, first - timedelta(hours=1), "treatment") for t, u, first in buyers[:arm_size]
    ]
    rows += [a_firing(t, u, first + timedelta(days=1), "holdout") for t, u, first in late]
    rows += [a_firing(t, u, buyers[0][2], "holdout") for t, u in others[: arm_size - 10]]
    # A second firing of the same user: only the first one opens the window.
    rows.append(a_firing(*buyers[0][:2], buyers[0][2] + timedelta(days=2), "treatment"))
    write_firings(settings, rows)
    workspace.build(*SELECT)

    impact = {
        r[0]: dict(
            zip(
                ["users", "converted", "rate", "lift", "low", "p", "srm", "decision"],
                r[1:],
                strict=True,
            )
        )
        for r in workspace.sql(
            "select arm, users, converted_users, conversion_rate, revenue_lift, revenue_ci_low, "
            "revenue_p_value, srm_p_value, decision from marts.mart_trigger_impact "
            "where tenant_id = 'acme' and trigger = 'winback'"
        )
    }
    treated, held = impact["treatment"], impact["holdout"]
    assert treated["users"] == arm_size and treated["converted"] == arm_size
    assert held["users"] == arm_size and held["converted"] == 0
    assert treated["lift"] > 0 and treated["low"] > 0 and treated["p"] < 0.05
    assert treated["decision"] == "ship" and held["decision"] is None
    assert treated["srm"] > 0.001  # equal arms, as planned (holdout 0.5)

    # Every treatment firing has a delivery row (pending until the deliverer reaches it).
    deliveries = workspace.sql(
        "select status, count(*), sum(attempts) from marts.fct_trigger_deliveries group by all"
    )
    assert deliveries == [("pending", arm_size + 1, 0)]
    with WebhookSink() as sink:
        triggers.write_text(
            yaml.safe_dump({"destinations": {"hook": webhook(sink.url)}, "triggers": []})
        )
        deliver_pass(settings, triggers_path=triggers, env={"HOOK_SECRET": "x"})
    workspace.build("--select", "fct_trigger_deliveries")
    assert workspace.sql(
        "select status, count(*), sum(attempts) from marts.fct_trigger_deliveries group by all"
    ) == [("delivered", arm_size + 1, arm_size + 1)]
