"""Freshness tiers as data (issue #25): every model declares its tier in its YAML, no model
waits for a slower tier, the issue's models are where it puts them, and Dagster shows each
model's tier."""

from __future__ import annotations

import json

import pytest

from lakepulse.warehouse.tiers import TIER_NAMES, tier_plan

pytestmark = pytest.mark.integration

LIVE_AT_LEAST = {
    "mart_event_volume",
    "mart_conversion_windows",
    "trigger_anomaly",
    "trigger_metric_threshold",
}
SESSION_AT_LEAST = {
    "int_sessions",
    "fct_sessions",
    "dim_users",
    "mart_funnel_conversion",
    "mart_revenue_velocity",
    "mart_buyer_signals",
    "trigger_abandoned_cart",
    "trigger_welcome",
    "mart_customer_predictions",
}
DAILY_AT_LEAST = {"mart_cohort_retention", "mart_campaign_kpis", "mart_experiment_results"}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    from lakepulse.core.settings import Settings
    from lakepulse.warehouse.dbt import run_dbt

    settings = Settings.from_env({"LAKEPULSE_HOME": str(tmp_path_factory.mktemp("tiers"))})
    run_dbt(settings, "parse", "--quiet", capture=True)
    return json.loads(settings.dbt_manifest_path.read_text())


def models(manifest: dict) -> dict[str, dict]:
    return {n["unique_id"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}


def test_every_model_declares_a_known_tier(manifest):
    missing = {
        node["name"]: node["config"].get("meta", {}).get("tier")
        for node in models(manifest).values()
        if node["config"].get("meta", {}).get("tier") not in TIER_NAMES
    }
    assert missing == {}


def test_no_model_reads_a_slower_tier(manifest):
    rank = {tier: i for i, tier in enumerate(TIER_NAMES)}
    nodes = models(manifest)
    tier = {uid: node["config"]["meta"]["tier"] for uid, node in nodes.items()}
    slower = [
        f"{nodes[uid]['name']} ({tier[uid]}) reads {nodes[up]['name']} ({tier[up]})"
        for uid, node in nodes.items()
        for up in node["depends_on"]["nodes"]
        if up in nodes and rank[tier[up]] > rank[tier[uid]]
    ]
    assert slower == []


def test_the_issues_models_are_in_their_tiers(settings, manifest):
    settings.dbt_manifest_path.parent.mkdir(parents=True, exist_ok=True)
    settings.dbt_manifest_path.write_text(json.dumps(manifest))
    plan = tier_plan(settings.dbt_manifest_path)
    assert plan.of("live") >= LIVE_AT_LEAST
    assert plan.of("session") >= SESSION_AT_LEAST
    assert plan.of("daily") >= DAILY_AT_LEAST
    assert set(plan.marts("live")) == {"mart_event_volume", "mart_conversion_windows"}


def test_dagster_shows_each_models_tier(settings):
    from lakepulse.warehouse.dbt import parsed_manifest
    from orchestration.assets.dbt import TIER_TAG, build_dbt_assets
    from orchestration.resources import dbt_project_for

    assets = build_dbt_assets(dbt_project_for(settings), settings, parsed_manifest(settings))
    tags = {key.path[-1]: spec.tags.get(TIER_TAG) for key, spec in assets.specs_by_key.items()}
    assert tags["mart_event_volume"] == "live"
    assert tags["fct_sessions"] == "session"
    assert tags["mart_cohort_retention"] == "daily"


def test_every_test_of_a_tier_runs_in_exactly_one_of_its_waves(settings, manifest):
    """A slower tier's turn in waves runs the tests of one build of the tier, each once, and
    none before every model it reads is built in the turn."""
    import duckdb

    from lakepulse.warehouse.dbt import WarmDbt, remember_build, tier_build_args
    from lakepulse.warehouse.tiers import tier_selector

    settings.dbt_manifest_path.parent.mkdir(parents=True, exist_ok=True)
    settings.dbt_manifest_path.write_text(json.dumps(manifest))
    plan = tier_plan(settings.dbt_manifest_path)
    dbt = WarmDbt(settings)
    duckdb.connect(str(settings.warehouse_path)).close()

    def tests_of(args: list[str]) -> set[str]:
        selection = [arg for arg in args[1:] if arg not in ("--exclude-resource-type", "unit_test")]
        listed = dbt.invoke("ls", "--resource-type", "test", "--output", "name", *selection)
        return set(listed)

    for tier in ("session", "daily"):
        settings.seeds_marker_path.unlink(missing_ok=True)  # a new warehouse: seeds to build
        waves = plan.waves(tier)
        assert len(waves) == 2, tier
        whole = tests_of(tier_build_args(settings, tier_selector(tier), upstream_tests=False))
        by_wave = []
        for wave in waves:
            args = tier_build_args(settings, " ".join(wave), upstream_tests=False, wave=True)
            by_wave.append(tests_of(args))
            remember_build(settings, args)  # as the worker does: the seeds are built now
        assert all(by_wave), tier
        assert by_wave[0] | by_wave[1] == whole, tier
        assert not by_wave[0] & by_wave[1], tier
        nodes = {n["name"]: n for n in manifest["nodes"].values()}
        for test in by_wave[0]:  # a first-wave test reads no model of the second wave
            read = {up.split(".")[-1] for up in nodes[test]["depends_on"]["nodes"]}
            assert not read & waves[1], (tier, test)


def test_the_session_turn_judges_by_its_own_clock(settings, manifest):
    """The session tier's trigger kinds and predictions read the clock copied in the turn's
    first wave (int_session_clocks), so they are built after it, while no session model built
    after the first wave reads the live tier (whose clock moves between the waves)."""
    settings.dbt_manifest_path.parent.mkdir(parents=True, exist_ok=True)
    settings.dbt_manifest_path.write_text(json.dumps(manifest))
    plan = tier_plan(settings.dbt_manifest_path)
    first, later = plan.waves("session")
    assert "int_session_clocks" in first
    assert {"trigger_inactive", "trigger_abandoned_cart", "mart_customer_predictions"} <= later
    live = plan.of("live")
    assert {model: plan.reads[model] & live for model in later if plan.reads[model] & live} == {}
