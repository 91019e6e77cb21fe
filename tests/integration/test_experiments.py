"""A/B experiments through the real pipeline: simulated traffic with a planted effect ->
landing log -> bronze -> dbt -> mart_experiment_results, the snapshot history that keeps the
results always valid, and sample-ratio mismatch."""

import shutil
import subprocess
import sys
import uuid

import pytest

from ingestion.contract import normalize
from ingestion.landing import LandingLog
from lakepulse.core.settings import DBT_PROJECT_DIR
from lakepulse.demo.simulator import Experiment
from lakepulse.operations.rebuild import run_build
from tests.conftest import SIM_CLOCK, dbt_in_project_copy, land_simulated

pytestmark = pytest.mark.integration

SELECT = ("--select", "+mart_experiment_results")
CLI = (sys.executable, "-m", "lakepulse.cli")


def results(workspace, metric: str = "conversion") -> dict[tuple[str, str], dict]:
    rows = workspace.sql(
        "select tenant_id, variation_id, users, decision, srm_flag, always_valid_p_value, "
        "always_valid_ci_low, always_valid_ci_high, absolute_lift, snapshots "
        f"from marts.mart_experiment_results where metric = '{metric}'"
    )
    keys = ["users", "decision", "srm_flag", "p", "low", "high", "lift", "snapshots"]
    return {(r[0], r[1]): dict(zip(keys, r[2:], strict=True)) for r in rows}


def test_a_planted_effect_ships_and_the_history_keeps_results_always_valid(settings, workspace):
    planted = [Experiment("checkout_button", {"control": 1.0, "green": 2.0})]
    land_simulated(settings, 12_000, experiments=planted)
    workspace.ingest()
    workspace.build(*SELECT)
    first = results(workspace)

    land_simulated(settings, 24_000, seed=10, experiments=planted)
    workspace.ingest()
    workspace.build(*SELECT)
    second = results(workspace)

    for tenant in ("acme", "globex"):
        treated, control = second[(tenant, "green")], second[(tenant, "control")]
        assert control["decision"] is None and control["users"] > 500
        assert treated["snapshots"] == 2
        assert treated["decision"] == "ship", treated
        assert treated["srm_flag"] is False
        assert treated["low"] > 0
        assert treated["lift"] > 0.05

    history = workspace.sql(
        "select tenant_id, min(sequential_p_value), max(sequential_absolute_ci_low), "
        "min(sequential_absolute_ci_high), count(*) from marts.fct_experiment_snapshots "
        "where metric = 'conversion' and variation_id = 'green' group by tenant_id"
    )
    for tenant, min_p, max_low, min_high, snapshots in history:
        latest = second[(tenant, "green")]
        assert snapshots == 2
        assert latest["p"] == pytest.approx(min_p)
        assert (latest["low"], latest["high"]) == pytest.approx((max_low, min_high))
        assert latest["p"] <= first[(tenant, "green")]["p"]

    # The analyst's view from the terminal, with the plot of the history.
    png = settings.home / "checkout_button.png"
    shown = subprocess.run(
        [*CLI, "experiment", "checkout_button", "--tenant", "acme", "--plot", str(png)],
        env=settings.process_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ship" in shown and "conversion" in shown
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Rebuilding every mart from scratch keeps the history, which events cannot recreate.
    run_build(settings, "--full-refresh", *SELECT, capture=True)
    assert results(workspace)[("acme", "green")]["snapshots"] == 3


def test_a_broken_split_is_flagged_and_invalidates_the_experiment(settings, workspace):
    land_simulated(settings, 6_000)
    # A bucketing bug: 600 extra visitors all land in control for acme only.
    rows = [
        normalize(
            {
                "type": "track",
                "event": "Experiment Viewed",
                "messageId": str(uuid.uuid4()),
                "anonymousId": str(uuid.uuid4()),
                "timestamp": SIM_CLOCK.isoformat(),
                "properties": {"experiment_id": "checkout_button", "variation_id": "control"},
            },
            tenant_id="acme",
            secret=b"s",
            received_at=SIM_CLOCK,
        )
        for _ in range(600)
    ]
    LandingLog(settings.landing_dir).write("acme", "events", rows)
    workspace.ingest()
    workspace.build(*SELECT)
    by_arm = results(workspace)
    assert by_arm[("acme", "green")]["srm_flag"] is True
    assert by_arm[("acme", "green")]["decision"] == "invalid: SRM"
    assert by_arm[("acme", "control")]["decision"] == "invalid: SRM"
    assert by_arm[("globex", "green")]["srm_flag"] is False  # tenants are analysed apart


def test_an_unregistered_experiment_is_analysed_with_defaults_until_registered(
    settings, workspace, tmp_path
):
    planted = [
        Experiment("checkout_button", {"control": 1.0, "green": 1.0}),
        Experiment("hero_banner", {"plain": 1.0, "photo": 1.0}),  # in no seed
    ]
    land_simulated(settings, 8_000, experiments=planted)
    workspace.ingest()
    workspace.build(*SELECT)
    query = (
        "select experiment_id, any_value(registered), string_agg(distinct metric, ' ' "
        "order by metric), any_value(alpha), any_value(sequential_n_star), "
        "string_agg(distinct variation_id, ' ' order by variation_id) filter (where is_control), "
        "list_sort(list_distinct(list(planned_weight))), max(snapshots) "
        "from marts.mart_experiment_results where tenant_id = 'acme' group by 1 order by 1"
    )
    assert workspace.warehouse_sql(query) == [
        (
            "checkout_button",
            True,
            "capped_revenue conversion orders revenue",
            0.05,
            20000,
            "control",
            [0.5],
            1,
        ),
        (
            "hero_banner",
            False,
            "capped_revenue conversion orders revenue",
            0.05,
            5000,
            "photo",
            [0.5],
            1,
        ),
    ]
    [(users,)] = workspace.warehouse_sql(
        "select min(users) from marts.mart_experiment_results where experiment_id = 'hero_banner'"
    )
    assert users > 100

    # Registering it in the seeds (a copy of the project, so other tests keep theirs) takes
    # over its settings at the next build, and its always-valid sequence starts again.
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("logs", "target"))
    with (project / "seeds" / "experiments.csv").open("a") as seed:
        seed.write('hero_banner,"Hero photo",plain,conversion,0.1,1000,,2020-01-01 00:00:00+00,\n')
    with (project / "seeds" / "experiment_variations.csv").open("a") as seed:
        seed.write("hero_banner,plain,0.25\nhero_banner,photo,0.75\n")
    dbt_in_project_copy(settings, project, "build", *SELECT)
    assert workspace.warehouse_sql(
        query.replace("where", "where experiment_id = 'hero_banner' and")
    ) == [("hero_banner", True, "conversion", 0.1, 1000, "plain", [0.25, 0.75], 1)]
