"""The PostgreSQL ``make demo`` serves BI from (``serving_postgres``): BI tools reach it over
TCP with a password (SCRAM) and without one are refused, the platform connects over the Unix
socket, and the data outlives a restart."""

import subprocess
import sys

import psycopg
import pytest

from lakepulse.core.settings import PROJECT_ROOT
from lakepulse.warehouse.postgres import free_port, serving_postgres

pytestmark = pytest.mark.integration

RESTART = """
import sys, psycopg
from lakepulse.warehouse.postgres import serving_postgres
with serving_postgres(sys.argv[1], int(sys.argv[2])) as url, psycopg.connect(url) as conn:
    print(conn.execute("select id from kept order by id").fetchall())
"""


def test_bi_logs_in_over_tcp_with_a_password_only_and_the_data_outlives_a_restart(tmp_path):
    pgdata, port = tmp_path / "pg" / "data", free_port()
    tcp = f"postgresql://bi@127.0.0.1:{port}/postgres"
    with serving_postgres(pgdata, port) as url:
        assert "host=" in url and "127.0.0.1" not in url  # the platform: the Unix socket
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("create role bi login password 'right-password'")
            admin.execute("create table kept (id int primary key)")
            admin.execute("insert into kept values (1), (2)")
            admin.execute("grant select on kept to bi")
        with psycopg.connect(tcp, password="right-password") as bi:
            assert bi.execute("select count(*) from kept").fetchone()[0] == 2
        for password in (None, "wrong-password"):
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(tcp, password=password, connect_timeout=10).close()
        with psycopg.connect(url, autocommit=True) as admin:
            assert admin.execute(
                "select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = 'bi'"
            ).fetchone()[0]
    with pytest.raises(psycopg.OperationalError):  # stopped when the context ends
        psycopg.connect(tcp, password="right-password", connect_timeout=5).close()

    # The next `make demo` (a new process) starts it again on the same data.
    again = subprocess.run(
        [sys.executable, "-c", RESTART, str(pgdata), str(port)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "[(1,), (2,)]"
