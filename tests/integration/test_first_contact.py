"""First contact: every CLI command, run as a real process on an empty data directory
(LAKEPULSE_HOME pointing at an empty directory), either works or says what to do next, and
never answers with a traceback.

`lakepulse demo` is left to tests/e2e/test_demo.py (it starts the whole stack); `lakepulse bi`
with a serving PostgreSQL starts Superset, which tests/e2e/test_superset.py does.
"""

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from lakepulse.core.settings import PROJECT_ROOT
from lakepulse.warehouse.postgres import free_port
from tests.conftest import wait_for_http

pytestmark = pytest.mark.integration

_NO_COLLECTOR = f"http://127.0.0.1:{free_port()}"

# (arguments, expected exit code, a phrase that must be printed: the result or the next step)
ALONE = [
    (["ingest"], 0, "raw.events holds 0 events"),
    # its first cycle creates bronze and builds every tier, however short the run asked for
    (["worker", "--minutes", "0.01"], 0, "built live+session+daily"),
    (["build"], 2, "`lakepulse ingest` first"),
    (["replay"], 2, "`lakepulse ingest` first"),
    (["sql", "select count(*) as n from raw.events"], 2, "`lakepulse ingest`"),
    (["sql", "select 42 as answer"], 0, "`lakepulse build`"),
    (["experiment", "checkout_button", "--tenant", "acme"], 2, "`lakepulse build`"),
    (["publish"], 2, "LAKEPULSE_PG_URL"),
    (["bi"], 2, "LAKEPULSE_PG_URL"),
    (["tenants", "bi-login", "acme"], 2, "LAKEPULSE_PG_URL"),
    (["tenants", "add", "shop"], 0, "point a Segment SDK"),
    (["tenants", "list"], 0, "`lakepulse tenants add NAME`"),
    (["erase", "--tenant", "acme", "--user", "u1", "--yes"], 2, "`lakepulse tenants list`"),
    (["retention"], 0, "Retention applied"),
    (["predict"], 1, "`lakepulse build`"),
    (["compact"], 0, "`lakepulse ingest`"),
    (["triggers", "validate"], 0, "is valid"),
    (["triggers", "list"], 0, "last hour"),
    (["triggers", "fire"], 0, "`lakepulse build`"),
    (["triggers", "deliver"], 0, "0 due"),
    (["triggers", "retry"], 0, "re-queued 0 dead letters"),
    (["simulate", "--events", "5", "--quiet", "--url", _NO_COLLECTOR], 2, "`lakepulse collect`"),
]


ELSEWHERE = {"demo", "collect"}
"""Long-running: `collect` is started below, `demo` by tests/e2e/test_demo.py."""


def _command_names() -> set[str]:
    import click

    from lakepulse.cli import main

    names = set()
    for name, command in main.commands.items():
        if isinstance(command, click.Group):
            names |= {f"{name} {sub}" for sub in command.commands}
        else:
            names.add(name)
    return names


def test_every_command_has_a_first_contact_case():
    """A new command gets a case here, or this fails."""
    groups = {name.split()[0] for name in _command_names() if " " in name}
    covered = {" ".join(a[:2]) if a[0] in groups else a[0] for a, _, _ in ALONE}
    assert _command_names() - ELSEWHERE <= covered, _command_names() - ELSEWHERE - covered


def _env(home: Path, **extra: str) -> dict[str, str]:
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DAGSTER_HOME", "LAKEPULSE_PG_URL", "LAKEPULSE_TRIGGERS_FILE"}
    }
    env.update(
        LAKEPULSE_HOME=str(home),
        LAKEPULSE_COLLECTOR_PORT=str(free_port()),
        DO_NOT_TRACK="1",
        DAGSTER_DISABLE_TELEMETRY="1",
        RUNTIME__DLTHUB_TELEMETRY="false",
        GX_ANALYTICS_ENABLED="False",
    )
    env.update(extra)
    return env


def lakepulse(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "lakepulse.cli", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


@pytest.fixture
def empty_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.mark.parametrize(
    ("args", "code", "says"), ALONE, ids=["-".join(a[:2]) for a, _, _ in ALONE]
)
def test_each_command_alone_on_an_empty_home(empty_home, args, code, says):
    result = lakepulse(_env(empty_home), *args)
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert says in output


def test_ingest_of_nothing_creates_bronze_and_build_then_works(empty_home, postgres_url):
    """The issue's path: `ingest` with no events said "Next: `lakepulse build`", and the build
    then failed on a missing Delta table. Now the first load creates both bronze tables, empty,
    and the build, queries, triggers, compaction, replay and publish all work on them."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("drop database if exists first_contact")
        conn.execute("create database first_contact")
    pg_url = urlunsplit(urlsplit(postgres_url)._replace(path="/first_contact"))
    env = _env(empty_home)

    ingested = lakepulse(env, "ingest")
    assert ingested.returncode == 0 and "Next: `lakepulse build`" in ingested.stdout
    for table in ("events", "events_rejected"):
        assert (empty_home / "lake" / "raw" / table / "_delta_log").is_dir()

    built = lakepulse(env, "build")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr
    assert "Marts rebuilt" in built.stdout

    counted = lakepulse(env, "sql", "select count(*) as n from raw.events")
    assert counted.returncode == 0 and counted.stdout.split() == ["n", "0"], counted.stderr
    volume = lakepulse(env, "sql", "select count(*) as n from marts.mart_event_volume")
    assert volume.returncode == 0 and volume.stdout.split() == ["n", "0"], volume.stderr

    predicted = lakepulse(env, "predict")
    assert predicted.returncode == 0 and "No orders yet" in predicted.stdout, predicted.stderr

    fired = lakepulse(env, "triggers", "fire")
    assert fired.returncode == 0 and "no marts yet" not in fired.stdout
    compacted = lakepulse(env, "compact")
    assert compacted.returncode == 0 and "raw.events" in compacted.stdout

    served = _env(empty_home, LAKEPULSE_PG_URL=pg_url)
    published = lakepulse(served, "publish")
    assert published.returncode == 0, published.stderr
    assert "each atomically" in published.stdout
    login = lakepulse(served, "tenants", "bi-login", "firstcontact")
    assert login.returncode == 0 and "user:     bi_firstcontact" in login.stdout, login.stderr

    replayed = lakepulse(env, "replay")
    assert replayed.returncode == 0, replayed.stdout[-3000:] + replayed.stderr


def test_publish_before_any_build_says_to_build(empty_home, postgres_url):
    result = lakepulse(_env(empty_home, LAKEPULSE_PG_URL=postgres_url), "publish")
    assert result.returncode == 2 and "`lakepulse build`" in result.stderr


def test_collector_on_an_empty_home_and_the_way_to_a_first_event(empty_home, tmp_path):
    """`collect` serves at once; `simulate` with the demo keys (registered only by the demo)
    says to add a tenant; with a tenant's key the events arrive and reach bronze."""
    env = _env(empty_home)
    url = f"http://127.0.0.1:{env['LAKEPULSE_COLLECTOR_PORT']}"
    with open(tmp_path / "collector.log", "wb") as log:
        collector = subprocess.Popen(
            [sys.executable, "-m", "lakepulse.cli", "collect"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_http(f"{url}/health", process=collector)

            refused = lakepulse(env, "simulate", "--events", "20", "--quiet")
            assert refused.returncode == 2 and "`lakepulse tenants add NAME`" in refused.stderr

            key = lakepulse(env, "tenants", "add", "shop").stdout.strip()
            sent = lakepulse(
                env, "simulate", "--events", "20", "--quiet", "--write-key", f"shop={key}"
            )
            assert sent.returncode == 0 and "20 events accepted" in sent.stdout, sent.stderr
        finally:
            collector.kill()
            collector.wait()

    ingested = lakepulse(env, "ingest")
    assert ingested.returncode == 0 and "raw.events holds 20 events" in ingested.stdout
