"""The PostgreSQL fixture gives a real server later issues publish marts to."""

import psycopg
import pytest

pytestmark = pytest.mark.integration


def test_real_postgres_server_accepts_ddl_and_queries(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        version = conn.execute("show server_version_num").fetchone()[0]
        assert int(version) >= 150000
        conn.execute("create schema if not exists fixture_check")
        conn.execute("create table fixture_check.t (id int primary key)")
        conn.execute("insert into fixture_check.t values (1), (2)")
        assert conn.execute("select count(*) from fixture_check.t").fetchone()[0] == 2
        conn.execute("drop schema fixture_check cascade")
