"""Serving marts to BI over PostgreSQL (a real server): atomic publish, least privilege and
per-tenant row-level security."""

import signal
import threading
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import duckdb
import psycopg
import pytest

from lakepulse.core.settings import Settings
from lakepulse.demo.simulator import Faults
from lakepulse.warehouse.publish import FRESHNESS_TABLE, create_tenant_login, publish
from tests.conftest import (
    SIM_CLOCK,
    Workspace,
    hold_lock,
    land_simulated,
    record_anomaly_alerts,
)
from tests.served import CUSTOMER_LEVEL_MARTS, DELTA_KEYS, MARTS
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

NO_TRIGGERS_FIRED = {
    "fct_trigger_deliveries",
    "mart_trigger_impact",
    "mart_clv_model",
    "mart_customer_predictions",
    "mart_model_accuracy",
    "mart_visitor_propensity",
    "mart_customer_segments",
}
"""Marts that stay empty here: the fixture fires no trigger and fits no prediction model
(minutes of traffic hold no purchase history; tests/integration/test_clv.py and
test_propensity.py publish them)."""


def with_db(url: str, dbname: str, user: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if user:
        netloc = f"{user}@{netloc.split('@', 1)[-1]}"
    return urlunsplit((parts.scheme, netloc, f"/{dbname}", parts.query, parts.fragment))


PUBLISH_WINDOW: dict[str, object] = {}
"""The server's clock just before and just after the fixture's publish."""


def server_clock(url: str):
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("select clock_timestamp()").fetchone()[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory, postgres_url):
    """Marts built from simulated traffic of two tenants, and a fresh database to publish to."""
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("serving") / "home"
        mp.setenv("LAKEPULSE_HOME", str(home))
        settings = Settings.from_env()
        settings.ensure_dirs()
        workspace = Workspace(settings)
        # Some malformed events too, so mart_rejected_events has rows of both tenants.
        land_simulated(settings, 3_000, faults=Faults(duplicate_rate=0.05, malformed_rate=0.02))
        workspace.ingest()
        # An anomaly alert (an anomaly trigger's firing) per tenant, so row-level security is
        # tried on the alert and firing marts too.
        record_anomaly_alerts(settings, ("acme", "globex"))
        workspace.build()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("drop database if exists serving_test")
            conn.execute("create database serving_test")
        url = with_db(postgres_url, "serving_test")
        PUBLISH_WINDOW["before"] = server_clock(url)
        result = publish(settings, url)
        PUBLISH_WINDOW["after"] = server_clock(url)
        yield settings, workspace, url, result


def tenant_conn(
    url: str, tenant: str, login: tuple[str, str] | None = None, customer_level: bool = False
) -> psycopg.Connection:
    role, password = login or create_tenant_login(url, tenant, customer_level=customer_level)
    return psycopg.connect(
        with_db(url, "serving_test", user=role), password=password, autocommit=True
    )


def test_publish_copies_every_mart_with_its_index(built):
    _, workspace, url, result = built
    assert set(result.rows) == set(MARTS) and not result.skipped
    with psycopg.connect(url) as conn:
        for mart in MARTS:
            published = conn.execute(f"select count(*) from marts.{mart}").fetchone()[0]
            assert (
                published
                == workspace.sql(f"select count(*) from marts.{mart}")[0][0]
                == result.rows[mart]
            )
            index = conn.execute(
                "select indexdef from pg_indexes where schemaname = 'marts' and tablename = %s",
                [mart],
            ).fetchone()[0]
            assert "(tenant_id" in index
        leftovers = conn.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' and table_name like '%%\\_\\_%%'"
        ).fetchall()
        assert leftovers == []


def test_a_customer_level_login_sees_only_its_own_rows_in_every_mart(built):
    _, workspace, url, _ = built
    with tenant_conn(url, "acme", customer_level=True) as conn:
        for mart in MARTS:
            expected = workspace.sql(f"select count(*) from marts.{mart} where tenant_id = 'acme'")[
                0
            ][0]
            assert conn.execute(f"select count(*) from marts.{mart}").fetchone()[0] == expected
            assert expected > 0 or mart in NO_TRIGGERS_FIRED, mart
            assert (
                conn.execute(
                    f"select count(*) from marts.{mart} where tenant_id = 'globex'"
                ).fetchone()[0]
                == 0
            )
        tenants = conn.execute("select distinct tenant_id from marts.fct_sessions").fetchall()
        assert tenants == [("acme",)]


def test_a_plain_login_reads_aggregates_but_no_user_level_mart(built):
    url = built[2]
    assert {"fct_sessions", "dim_users"} <= CUSTOMER_LEVEL_MARTS
    with tenant_conn(url, "globex") as conn:
        for mart in set(MARTS) - CUSTOMER_LEVEL_MARTS:
            rows = conn.execute(f"select count(*) from marts.{mart}").fetchone()[0]
            assert rows > 0 or mart in NO_TRIGGERS_FIRED, mart
        for mart in CUSTOMER_LEVEL_MARTS & set(MARTS):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"select count(*) from marts.{mart}")
    # Resetting a customer-level login without the flag takes the access away again.
    role, password = create_tenant_login(url, "globex", customer_level=True)
    with tenant_conn(url, "globex", (role, password)) as conn:
        assert conn.execute("select count(*) from marts.dim_users").fetchone()[0] > 0
    create_tenant_login(url, "globex", password)
    with tenant_conn(url, "globex", (role, password)) as conn, pytest.raises(psycopg.Error):
        conn.execute("select count(*) from marts.dim_users")


def test_publish_records_each_marts_freshness_per_tenant(built):
    _, workspace, url, result = built
    with tenant_conn(url, "acme") as conn:
        rows = conn.execute(
            f"select tenant_id, mart, row_count, latest_loaded_at, published_at "
            f"from marts.{FRESHNESS_TABLE}"
        ).fetchall()
    assert {row[0] for row in rows} == {"acme"}
    assert {row[1] for row in rows} == set(result.rows) - NO_TRIGGERS_FIRED  # no rows, no age
    for _, mart, count, _, published_at in rows:
        # The time of the publish that wrote it, by the server's clock.
        assert PUBLISH_WINDOW["before"] <= published_at <= PUBLISH_WINDOW["after"], mart
        expected = workspace.sql(f"select count(*) from marts.{mart} where tenant_id = 'acme'")
        assert count == expected[0][0], mart
    loaded = {mart: latest for _, mart, _, latest, _ in rows}
    assert (
        loaded["mart_event_volume"]
        == workspace.sql(
            "select max(last_loaded_at) from marts.mart_event_volume where tenant_id = 'acme'"
        )[0][0]
    )


@pytest.mark.parametrize(
    "statement",
    [
        "insert into marts.fct_sessions (tenant_id, session_id, user_key) values ('acme', 'x', 'y')",
        "update marts.dim_users set revenue = 0",
        "delete from marts.mart_campaign_kpis",
        "create table marts.mine (x int)",
        "create table public.mine (x int)",
        "select * from lakepulse_admin.tenant_logins",
        "select * from serving_secret.raw_events",
        "alter table marts.fct_sessions disable row level security",
        "drop table marts.fct_sessions",
        "set role postgres",
    ],
)
def test_a_tenant_login_cannot_write_escalate_or_read_outside_marts(built, statement):
    url = built[2]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("create schema if not exists serving_secret")
        admin.execute("create table if not exists serving_secret.raw_events as select 1 as x")
    with tenant_conn(url, "globex") as conn, pytest.raises(psycopg.Error):
        conn.execute(statement)


def test_readers_never_see_a_partial_or_missing_table_during_publish(built):
    settings, workspace, url, _ = built
    expected = workspace.sql(
        "select count(*) from marts.mart_conversion_windows where tenant_id = 'acme'"
    )[0][0]
    errors: list[str] = []
    counts: list[list[int]] = [[], [], []]
    stop = threading.Event()
    login = create_tenant_login(url, "acme")

    def reader(seen: list[int]) -> None:
        with tenant_conn(url, "acme", login) as conn:
            while not stop.is_set():
                try:
                    seen.append(
                        conn.execute(
                            "select count(*) from marts.mart_conversion_windows"
                        ).fetchone()[0]
                    )
                except psycopg.Error as err:
                    errors.append(repr(err))

    def every_reader_reads_again() -> None:
        marks = [len(seen) for seen in counts]
        wait_until(
            lambda: all(len(seen) > mark for seen, mark in zip(counts, marks, strict=True)),
            "every reader to read again",
        )

    threads = [threading.Thread(target=reader, args=(seen,)) for seen in counts]
    for thread in threads:
        thread.start()
    try:
        every_reader_reads_again()
        for _ in range(3):
            publish(settings, url, force=True)  # copied and swapped even though unchanged
            every_reader_reads_again()  # between swaps too, not only before and after
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert {count for seen in counts for count in seen} == {expected}
    # Readers caught inside a swap itself: test_publish_killed_midway_* below.


def test_publish_copies_only_the_marts_that_changed(built):
    settings, workspace, url, _ = built
    with psycopg.connect(url) as conn:
        before = dict(
            conn.execute(
                f"select mart, max(published_at) from marts.{FRESHNESS_TABLE} group by 1"
            ).fetchall()
        )
    again = publish(settings, url)
    assert again.rows == {}, "nothing was rebuilt, so nothing is copied"
    assert set(again.unchanged) == set(MARTS) - set(again.skipped)
    with psycopg.connect(url) as conn:
        after = dict(
            conn.execute(
                f"select mart, max(published_at) from marts.{FRESHNESS_TABLE} group by 1"
            ).fetchall()
        )
    # Unchanged marts are current: their freshness rows carry this publish's time.
    assert all(after[mart] > before[mart] for mart in before)

    # New well-formed traffic, a minute after what is loaded: the event marts change, the
    # rejected-events mart does not.
    land_simulated(settings, 400, seed=31, faults=Faults(), start=SIM_CLOCK + timedelta(hours=6))
    workspace.ingest()
    workspace.build()
    changed = publish(settings, url)
    assert "mart_event_volume" in changed.rows
    assert "mart_rejected_events" in changed.unchanged
    # The large marts went as deltas (a few keys), and PostgreSQL holds what the replica does.
    # The firings' mart changes only when a trigger fires, and none did in between.
    assert "fct_trigger_firings" in changed.unchanged
    assert set(changed.deltas) == set(DELTA_KEYS) - NO_TRIGGERS_FIRED - {"fct_trigger_firings"}
    assert all(0 < touched < changed.rows[mart] for mart, touched in changed.deltas.items())
    for mart in ("mart_event_volume", *DELTA_KEYS):
        assert published_rows(url, mart) == replica_rows(workspace, mart), mart

    # One firing gone (as erasure leaves it): the firings' mart goes as a delta of one key, not
    # a copy of every firing ever recorded.
    delete_first(settings, "fct_trigger_firings", "firing_id")
    erased = publish(settings, url)
    assert erased.deltas == {"fct_trigger_firings": 1}
    assert published_rows(url, "fct_trigger_firings") == replica_rows(
        workspace, "fct_trigger_firings"
    )


def delete_first(settings, mart: str, key: str) -> list[tuple]:
    """Delete the row of ``mart`` with the smallest ``key`` from the replica (as an erasure
    leaves it); returns the keys deleted."""
    with duckdb.connect(str(settings.replica_path)) as replica:
        return replica.execute(
            f"delete from marts.{mart} where {key} = (select min({key}) from marts.{mart}) "
            f"returning {key}"
        ).fetchall()


def in_order(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda row: tuple((value is None, str(value)) for value in row))


def published_rows(url: str, mart: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return in_order(conn.execute(f"select * from marts.{mart}").fetchall())


def replica_rows(workspace, mart: str) -> list[tuple]:
    return in_order(workspace.sql(f"select * from marts.{mart}"))


def test_a_delta_deletes_rows_gone_and_a_lost_state_falls_back_to_a_full_copy(built):
    settings, workspace, url, _ = built
    publish(settings, url)  # in step with the replica
    gone = delete_first(settings, "fct_sessions", "session_id")
    result = publish(settings, url)
    assert result.deltas == {"fct_sessions": 1}
    assert published_rows(url, "fct_sessions") == replica_rows(workspace, "fct_sessions")
    assert gone[0] not in {(row[1],) for row in published_rows(url, "fct_sessions")}
    # The next delta starts from the state the last one left (updated in place): one key.
    with duckdb.connect(str(settings.replica_path)) as replica:
        replica.execute(
            "update marts.fct_sessions set events = events + 1 "
            "where session_id = (select max(session_id) from marts.fct_sessions)"
        )
    result = publish(settings, url)
    assert result.deltas == {"fct_sessions": 1}
    assert published_rows(url, "fct_sessions") == replica_rows(workspace, "fct_sessions")

    # A state that does not describe the live tables (lost, or left behind by a crash after
    # the commit) is never used: the next publish copies the marts whole.
    settings.published_state_path.unlink()
    with duckdb.connect(str(settings.replica_path)) as replica:
        replica.execute(
            "delete from marts.dim_users where user_key = (select min(user_key) from marts.dim_users)"
        )
    result = publish(settings, url)
    assert "dim_users" in result.rows and result.deltas == {}
    assert published_rows(url, "dim_users") == replica_rows(workspace, "dim_users")
    workspace.build()  # the replica as the warehouse holds it again


def test_a_publish_waits_for_the_one_in_progress(built):
    """`lakepulse publish` while the pipeline publishes: it waits for the lock (and says so)
    instead of failing on the published state; a holder killed with SIGKILL frees it."""
    settings, workspace, url, _ = built
    holder = hold_lock(settings.publish_lock_path)
    told, results = threading.Event(), []
    second = threading.Thread(
        target=lambda: results.append(publish(settings, url, on_wait=told.set))
    )
    second.start()
    try:
        assert told.wait(60), "the second publish did not report the wait"
        assert results == []  # still waiting: the lock is held
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    second.join(120)
    assert len(results) == 1  # then it ran, to the end
    assert published_rows(url, "fct_sessions") == replica_rows(workspace, "fct_sessions")
