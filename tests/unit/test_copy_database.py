"""copy_database: a fresh file with the tables of the schemas asked for, read from a file or
through a connection its owner keeps open."""

from pathlib import Path

import duckdb
import pytest

from lakepulse.core.duck import copy_database


def _warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(path))
    conn.execute("create schema marts")
    conn.execute("create schema staging")
    conn.execute("create table marts.a as select range as n from range(1000)")
    conn.execute("create table marts.b as select 'x' || range as s from range(10)")
    conn.execute("create table staging.c as select range as n from range(5)")
    return conn


def _contents(path: Path) -> dict[str, list]:
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = conn.execute(
            "select schema_name, table_name from duckdb_tables() order by all"
        ).fetchall()
        return {
            f"{schema}.{table}": sorted(conn.execute(f"select * from {schema}.{table}").fetchall())
            for schema, table in tables
        }


@pytest.mark.parametrize("through_connection", [False, True])
def test_the_copy_holds_the_schemas_asked_for(tmp_path, through_connection):
    source, target = tmp_path / "wh.duckdb", tmp_path / "replica.duckdb"
    owner = _warehouse(source)
    # Rows written since the last checkpoint are in the log only: a copy through the owner's
    # connection sees them; a copy of the file needs them checkpointed (the owner closes it).
    owner.execute("insert into marts.b values ('logged')")
    if through_connection:
        copy_database(source, target, schemas=("marts",), connection=owner)
        # The owner's connection is as it was: still the warehouse, nothing left attached.
        assert owner.execute("select current_database()").fetchone() == ("wh",)
        assert [
            r[0]
            for r in owner.execute(
                "select database_name from duckdb_databases() where not internal"
            ).fetchall()
        ] == ["wh"]
        copy_database(source, target, schemas=("marts",), connection=owner)  # again
        owner.close()
    else:
        owner.close()
        copy_database(source, target, schemas=("marts",))
    copied = _contents(target)
    assert sorted(copied) == ["marts.a", "marts.b"]
    assert copied["marts.a"] == [(n,) for n in range(1000)]
    assert copied["marts.b"] == sorted([(f"x{n}",) for n in range(10)] + [("logged",)])
    assert not list(tmp_path.glob(".replica.duckdb.*.tmp"))


def test_a_copy_through_a_connection_reads_one_snapshot_whatever_commits_beside_it(
    tmp_path, monkeypatch
):
    """The pipeline worker copies the replica while its next cycles build: tables changed
    after the copy began still come as they were when it began."""
    import lakepulse.core.duck as duck

    source, target = tmp_path / "wh.duckdb", tmp_path / "replica.duckdb"
    owner = _warehouse(source)
    copy_schemas = duck._copy_schemas

    class BuildBesideTheFirstTable:
        """The copy's cursor; once it has copied a table, a build commits on another cursor
        of the owner's connection: it rebuilds marts.b and grows marts.a."""

        def __init__(self, cursor):
            self.cursor, self.built = cursor, False

        def execute(self, sql, *args):
            result = self.cursor.execute(sql, *args)
            if sql.startswith("create table copy_target") and not self.built:
                self.built = True
                builder = owner.cursor()
                builder.execute("create or replace table marts.b as select 'rebuilt' as s")
                builder.execute("insert into marts.a values (1000)")
                builder.close()
            return result

    monkeypatch.setattr(
        duck,
        "_copy_schemas",
        lambda conn, name, schemas: copy_schemas(BuildBesideTheFirstTable(conn), name, schemas),
    )
    copy_database(source, target, schemas=("marts",), connection=owner)
    copied = _contents(target)
    assert copied["marts.b"] == sorted((f"x{n}",) for n in range(10))
    assert len(copied["marts.a"]) == 1000
    assert owner.execute("select count(*) from marts.a").fetchone()[0] == 1001  # committed
    owner.close()
