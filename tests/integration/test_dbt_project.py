"""The dbt project reads like the best dbt projects: every model documented and tested, marts
under contract, docs generate, and a full build passes on simulated traffic."""

import json
import re
import subprocess

import duckdb
import pytest
import yaml

from lakepulse.core.settings import DBT_PROJECT_DIR
from lakepulse.warehouse.dbt import UPSTREAM_TESTS_TAG, run_dbt
from tests.conftest import land_simulated

pytestmark = pytest.mark.integration


def stg_events_tests(settings, test_name: str, *args: str) -> None:
    """Run one kind of data test on stg_events; raises CalledProcessError if any fails."""
    run_dbt(settings, "test", "--select", f"stg_events,test_name:{test_name}", *args, capture=True)


MARTS = {
    "fct_sessions",
    "dim_users",
    "mart_funnel_conversion",
    "mart_conversion_windows",
    "mart_revenue_velocity",
    "mart_cohort_retention",
    "mart_campaign_kpis",
    "mart_experiment_results",
}


def model_docs() -> dict[str, dict]:
    docs = {}
    for path in (DBT_PROJECT_DIR / "models").rglob("*.yml"):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            docs[model["name"]] = model
    return docs


def test_every_model_has_a_yaml_with_description_and_tests():
    models_dir = DBT_PROJECT_DIR / "models"
    sql_models = {p.stem for p in [*models_dir.rglob("*.sql"), *models_dir.rglob("*.py")]}
    docs = model_docs()
    assert sql_models <= set(docs), f"models without a YAML: {sql_models - set(docs)}"
    for name in sql_models:
        model = docs[name]
        assert model.get("description"), name
        columns = model.get("columns", [])
        # Constraints of an enforced contract are tests DuckDB runs on every write.
        has_tests = (
            model.get("data_tests")
            or any(c.get("data_tests") for c in columns)
            or (
                model.get("config", {}).get("contract", {}).get("enforced")
                and any(c.get("constraints") for c in columns)
            )
        )
        assert has_tests, f"{name} has no data_tests or constraints"
    for name in MARTS:
        assert docs[name]["config"]["contract"]["enforced"] is True, name


def test_upstream_tests_are_tagged_and_the_marts_and_trigger_tests_are_not(settings):
    """The minute's build runs the upstream tests every 10 minutes and the others always
    (lakepulse.warehouse.dbt.build_args): the tag must fall exactly on the sources', the
    staging and the intermediate models' tests."""
    run_dbt(settings, "parse", "--quiet", capture=True)
    manifest = json.loads(settings.dbt_manifest_path.read_text())
    tests = [n for n in manifest["nodes"].values() if n["resource_type"] == "test"]
    folders = {n["original_file_path"].split("/")[1] for n in tests}
    assert {"staging", "intermediate", "marts", "triggers"} <= folders
    for node in tests:
        upstream = node["original_file_path"].split("/")[1] in {"staging", "intermediate"}
        upstream = upstream or bool(node["sources"])  # the triggers' sources too
        assert (UPSTREAM_TESTS_TAG in node["tags"]) == upstream, node["unique_id"]


def test_build_and_docs_on_simulated_traffic(settings, workspace):
    land_simulated(settings, 4_000)
    workspace.ingest()
    workspace.build()
    # The pipeline's build leaves unit tests to development and CI: here they run.
    unit = run_dbt(settings, "test", "--select", "test_type:unit", capture=True).stdout
    # Every unit test of the project ran and passed: the summary's counts, exactly, against
    # the unit tests the manifest holds (at least the twelve written when this was).
    manifest = json.loads(settings.dbt_manifest_path.read_text())
    declared = set(manifest["unit_tests"])
    assert len(declared) >= 12
    run = json.loads((settings.dbt_target_dir / "run_results.json").read_text())
    # Beside the unit tests, dbt records the project's on-run-start hook as an operation.
    results = [r for r in run["results"] if not r["unique_id"].startswith("operation.")]
    assert {r["unique_id"] for r in results} == declared
    assert {r["status"] for r in results} == {"pass"}
    summary = re.search(r"PASS=(\d+)\s+WARN=(\d+)\s+ERROR=(\d+)\s+SKIP=(\d+)", unit)
    assert summary is not None, unit
    hooks = len(run["results"]) - len(results)
    assert summary.groups() == (str(len(declared) + hooks), "0", "0", "0"), unit
    run_dbt(settings, "docs", "generate", capture=True)
    catalog = json.loads((settings.dbt_target_dir / "catalog.json").read_text())
    built = {node["metadata"]["name"] for node in catalog["nodes"].values()}
    assert built >= MARTS
    rows = dict(
        workspace.sql(
            "select 'sessions', count(*) from marts.fct_sessions union all "
            "select 'funnel', count(*) from marts.mart_funnel_conversion union all "
            "select 'windows', count(*) from marts.mart_conversion_windows"
        )
    )
    assert all(n > 0 for n in rows.values()), rows
    # Period 0 of every cohort is everyone; funnel steps never grow.
    assert workspace.sql(
        "select count(*) from marts.mart_cohort_retention where period_number = 0 and user_retention <> 1"
    ) == [(0,)]
    assert workspace.sql(
        "select count(*) from (select users - lag(users) over (partition by tenant_id, funnel_id, entry_date, channel, device_class order by step_number) as growth "
        "from marts.mart_funnel_conversion) where growth > 0"
    ) == [(0,)]


def test_uniqueness_tests_check_recent_keys_against_all_history(settings, workspace):
    """The minute's uniqueness test on an incremental model looks at the keys loaded in the
    last hour, against every row: a duplicate of an old row loaded now fails it; two old
    duplicates are left to a full check (`data_tests_recent_minutes: null`, or a full refresh)."""
    land_simulated(settings, 300)
    workspace.ingest()
    workspace.build()

    def plant(loaded_at: str) -> None:
        """A copy of a staging row with another load time (an SQL expression)."""
        with duckdb.connect(str(settings.warehouse_path)) as conn:
            conn.execute(
                "insert into staging.stg_events select * replace "
                f"({loaded_at} as loaded_at) from staging.stg_events limit 1"
            )

    stg_events_tests(settings, "lakepulse_unique_combination")  # clean
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        conn.execute("update staging.stg_events set loaded_at = loaded_at - interval 3 day")
    plant("timestamptz '2000-01-01 00:00:00+00'")  # old duplicates: not the minute's business
    stg_events_tests(settings, "lakepulse_unique_combination")
    with pytest.raises(subprocess.CalledProcessError):
        stg_events_tests(
            settings, "lakepulse_unique_combination", "--vars", "{data_tests_recent_minutes: null}"
        )
    plant("now()")  # a duplicate of an old row, loaded now
    with pytest.raises(subprocess.CalledProcessError):
        stg_events_tests(settings, "lakepulse_unique_combination")


def test_row_checks_on_event_tables_look_at_recent_loads(settings, workspace):
    """Not-null and accepted-values tests on the event tables (`where: __recent_loads__`) check
    the rows loaded in the last hour in the minute's build, and every row in a full check."""
    land_simulated(settings, 200)
    workspace.ingest()
    workspace.build()

    stg_events_tests(settings, "accepted_values")  # clean
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        conn.execute(
            "insert into staging.stg_events select * replace ('bogus' as event_type, "
            "timestamptz '2000-01-01 00:00:00+00' as loaded_at) from staging.stg_events limit 1"
        )
    stg_events_tests(settings, "accepted_values")  # an old bad row: not the minute's business
    with pytest.raises(subprocess.CalledProcessError):
        stg_events_tests(settings, "accepted_values", "--vars", "{data_tests_recent_minutes: null}")
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        conn.execute("update staging.stg_events set loaded_at = now() where event_type = 'bogus'")
    with pytest.raises(subprocess.CalledProcessError):
        stg_events_tests(settings, "accepted_values")
