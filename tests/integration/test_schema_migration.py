"""A release that changes an incremental model's columns: the data directory's existing table
is rebuilt once, before the minute's build, instead of stopping that build every minute."""

from __future__ import annotations

import duckdb
import pytest

from lakepulse.operations.rebuild import migrate_changed_schemas, prepare_build
from lakepulse.warehouse.dbt import run_dbt
from tests.conftest import land_simulated

pytestmark = pytest.mark.integration


def columns(settings, schema: str, table: str) -> list[str]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        return [
            name
            for (name,) in conn.sql(
                "select column_name from duckdb_columns() "
                f"where schema_name = '{schema}' and table_name = '{table}'"
            ).fetchall()
        ]


def as_an_older_release_left_it(settings, *statements: str) -> None:
    """Alter the warehouse as an earlier release built it, and forget that this release's
    project was checked against it (a new release has another fingerprint)."""
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        for statement in statements:
            conn.execute(statement)
    settings.schemas_checked_marker_path.write_text("an older release\n")


def test_tables_whose_columns_changed_are_rebuilt_once_and_the_build_goes_on(settings, workspace):
    land_simulated(settings, 600)
    workspace.ingest()
    workspace.build()
    users = workspace.warehouse_sql("select count(*) from marts.mart_buyer_signals")
    # Session 9 dropped `signals_as_of` from mart_buyer_signals; a release adds a column to
    # fct_sessions (here: the table lacks one the contract names).
    as_an_older_release_left_it(
        settings,
        "alter table marts.mart_buyer_signals add column signals_as_of timestamptz",
        "alter table marts.fct_sessions drop column device_class",
    )

    land_simulated(settings, 300, seed=8)
    workspace.ingest()
    heard = []
    args = prepare_build(settings, on_migrate=heard.extend)
    run_dbt(settings, *args, capture=True)  # the minute's build: it would stop on both tables

    assert {(d.model, d.missing, d.extra) for d in heard} == {
        ("mart_buyer_signals", (), ("signals_as_of",)),
        ("fct_sessions", ("device_class",), ()),
    }
    assert "signals_as_of" not in columns(settings, "marts", "mart_buyer_signals")
    assert "device_class" in columns(settings, "marts", "fct_sessions")
    assert workspace.warehouse_sql("select count(*) from marts.mart_buyer_signals") >= users
    # Once: the project has not changed since, so the next minute neither checks nor rebuilds.
    assert migrate_changed_schemas(settings) == []
    assert settings.schemas_checked_marker_path.read_text() != "an older release\n"


def test_a_table_that_fits_its_contract_is_left_as_it_is(settings, workspace):
    land_simulated(settings, 300)
    workspace.ingest()
    workspace.build()
    settings.schemas_checked_marker_path.write_text("an older release\n")
    results = settings.dbt_target_dir / "run_results.json"
    assert not results.exists()  # the warm build (Workspace.build) writes no JSON artifacts
    assert migrate_changed_schemas(settings) == []
    assert not results.exists()  # no dbt process built anything
