"""Exactly-once loading from the landing log into Delta bronze: SDK retries, files offered
twice, and a loader SIGKILLed at random points all end in the same rows as one clean run."""

import random
import shutil
import signal
import subprocess
import sys
import time

import pyarrow.compute as pc
import pytest

from ingestion.landing import LandingLog
from lakepulse.config import PROJECT_ROOT, Settings
from tests.conftest import land_simulated, landing_rows

pytestmark = pytest.mark.integration


def bronze_rows(settings: Settings) -> list[tuple]:
    from deltalake import DeltaTable

    table = DeltaTable(str(settings.bronze_events_path)).to_pyarrow_table()
    table = table.drop_columns(["loaded_at"])
    table = table.sort_by([("tenant_id", "ascending"), ("message_id", "ascending")])
    return [tuple(r.values()) for r in table.to_pylist()]


def ingest_cmd(settings: Settings) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lakepulse.cli", "ingest"],
        env=settings.process_env(),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def timed_ingest(settings: Settings) -> float:
    started = time.monotonic()
    assert ingest_cmd(settings).wait() == 0
    return time.monotonic() - started


@pytest.mark.serial
def test_killed_loader_converges_to_the_uninterrupted_result(tmp_path):
    reference = Settings.from_env({"LAKEPULSE_HOME": str(tmp_path / "reference")})
    crashed = Settings.from_env({"LAKEPULSE_HOME": str(tmp_path / "crashed")})
    for s in (reference, crashed):
        s.ensure_dirs()
    unique = land_simulated(reference, 150_000)

    # Nothing landed yet: interpreter, imports, an empty run. Warm (the faster of two): the
    # first start compiles and caches, and a start measured cold lands kills after the load.
    startup = min(timed_ingest(crashed), timed_ingest(crashed))
    full = timed_ingest(reference)
    expected = bronze_rows(reference)
    assert len(expected) == unique

    # The landing log reaches the crashing loader in tranches (in publication order, as the
    # collector would write it), so every round has real work to be killed in. Each kill lands
    # at a random moment inside that round's expected working time, measured on this machine
    # in this run rather than guessed, so a faster or slower machine still kills mid-load.
    files = sorted(LandingLog(reference.landing_dir).files(), key=lambda f: f.name)
    rounds = 6
    per_round = max((full - startup) / rounds, 0.2)
    rng = random.Random(5)
    kills = 0
    for i in range(rounds):
        for f in files[i * len(files) // rounds : (i + 1) * len(files) // rounds]:
            target = crashed.landing_dir / f.path.relative_to(reference.landing_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f.path, target)
        proc = ingest_cmd(crashed)
        time.sleep(startup + rng.uniform(0.1, 0.9) * per_round)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert ingest_cmd(crashed).wait() == 0
    assert ingest_cmd(crashed).wait() == 0  # and once more with nothing new
    assert kills >= rounds // 2, f"only {kills} of {rounds} rounds were killed mid-load"
    assert bronze_rows(crashed) == expected


def test_counts_reconcile_landing_equals_bronze_plus_rejected_plus_duplicates(settings, workspace):
    unique = land_simulated(settings, 5_000)
    log = LandingLog(settings.landing_dir)
    landed = sum(len(landing_rows(f.path)) for f in log.files("events"))
    log.write(
        "acme",
        "rejected",
        [
            {
                "tenant_id": "acme",
                "rejection_id": "r1",
                "message_id": "m",
                "received_at": 1,
                "reason": "x",
                "payload": "{}",
            }
        ],
    )
    workspace.ingest()
    bronze = workspace.bronze()
    rejected = workspace.bronze("events_rejected")
    duplicates = landed - unique
    assert duplicates > 0
    assert landed + 1 == bronze.num_rows + rejected.num_rows + duplicates
    assert (
        pc.count_distinct(
            pc.binary_join_element_wise(bronze["tenant_id"], bronze["message_id"], "|")
        ).as_py()
        == bronze.num_rows
    )


def test_a_copy_in_a_later_chunk_of_the_same_load_is_dropped(settings, workspace, monkeypatch):
    import ingestion.pipeline as pipeline

    monkeypatch.setattr(pipeline, "MAX_FILES_PER_CHUNK", 1)  # every file its own chunk
    land_simulated(settings, 300, per_file=100)
    log = LandingLog(settings.landing_dir)
    first = next(iter(log.files("events")))
    log.write(
        landing_rows(first.path)[0]["tenant_id"], "events", landing_rows(first.path)
    )  # an SDK retry
    workspace.ingest()
    bronze = workspace.bronze()
    keys = pc.binary_join_element_wise(bronze["tenant_id"], bronze["message_id"], "|")
    assert pc.count_distinct(keys).as_py() == bronze.num_rows > 0
