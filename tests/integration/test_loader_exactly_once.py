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
from lakepulse.core.settings import BRONZE_PIPELINE_NAME, PROJECT_ROOT, Settings
from tests.conftest import land_simulated, landing_rows

pytestmark = pytest.mark.integration


def bronze_rows(settings: Settings) -> list[tuple]:
    from deltalake import DeltaTable

    table = DeltaTable(str(settings.bronze_events_path)).to_pyarrow_table()
    table = table.drop_columns(["loaded_at"])
    table = table.sort_by([("tenant_id", "ascending"), ("message_id", "ascending")])
    return [tuple(r.values()) for r in table.to_pylist()]


def ingest_cmd(settings: Settings) -> subprocess.Popen:
    """``lakepulse ingest`` in its own process, its output in ``ingest.log`` of the home."""
    with open(settings.home / "ingest.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "lakepulse.cli", "ingest"],
            env=settings.process_env(),
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def ingest(settings: Settings) -> None:
    """A load run to the end; fails with the loader's own last words if it does not succeed."""
    if ingest_cmd(settings).wait() != 0:
        tail = (settings.home / "ingest.log").read_text(errors="replace")[-3000:]
        pytest.fail(f"lakepulse ingest failed:\n{tail}")


# Where a loader can die, as dlt 1.31 lays out its working folder (pinned): while reading the
# landing log, while normalizing, while writing Delta, and in the gap after the Delta commit
# but before dlt marks the package loaded (the crash that would duplicate rows if the package
# were simply re-applied). A dlt upgrade that moves these folders makes every round miss and
# the test fail on the phases it must have killed in, not pass vacuously.
PHASES = ("extracting", "normalizing", "writing_delta", "after_delta_commit")


def _delta_versions(settings: Settings) -> int:
    log = settings.bronze_events_path / "_delta_log"
    return len(list(log.glob("*.json"))) if log.exists() else 0


def _in_phase(settings: Settings, phase: str, versions_before: int) -> bool:
    work = settings.dlt_pipelines_dir / BRONZE_PIPELINE_NAME
    if phase == "extracting":
        return any(p.parent.name != "extracted" for p in work.glob("normalize/*/*/new_jobs"))
    if phase == "normalizing":
        return any(work.glob("normalize/extracted/*/new_jobs"))
    loading = any(work.glob("load/normalized/*/new_jobs"))
    if phase == "writing_delta":
        return loading
    return loading and _delta_versions(settings) > versions_before


def kill_in_phase(settings: Settings, phase: str, delay: float) -> bool:
    """Start a loader and SIGKILL it ``delay`` seconds after it is seen in ``phase``; True if it
    was still running when killed. Watching the loader's own folders rather than sleeping a
    guessed time lands the kill inside the load however fast or loaded the machine is."""
    versions_before = _delta_versions(settings)
    proc = ingest_cmd(settings)
    while proc.poll() is None and not _in_phase(settings, phase, versions_before):
        time.sleep(0.001)
    if delay and proc.poll() is None:
        time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return killed


@pytest.mark.serial
def test_killed_loader_converges_to_the_uninterrupted_result(tmp_path):
    reference = Settings.from_env({"LAKEPULSE_HOME": str(tmp_path / "reference")})
    crashed = Settings.from_env({"LAKEPULSE_HOME": str(tmp_path / "crashed")})
    for s in (reference, crashed):
        s.ensure_dirs()
    unique = land_simulated(reference, 150_000)
    ingest(reference)
    expected = bronze_rows(reference)
    assert len(expected) == unique

    # The landing log reaches the crashing loader in tranches (in publication order, as the
    # collector would write it), so every round has real work to be killed in; each round
    # kills in the next phase of PHASES, at a random moment shortly after it begins (none for
    # the commit gap, which lasts milliseconds). A kill that comes after the loader finished
    # is not counted: rounds go on, aimed at a long phase not killed in yet, until each has
    # been (a count of kills, not a bet on the machine's speed), with tranches to spare.
    files = sorted(LandingLog(reference.landing_dir).files(), key=lambda f: f.name)
    tranches = 4 * len(PHASES)
    long_phases = PHASES[:3]
    rng = random.Random(5)
    killed: list[str] = []
    for i in range(tranches):
        last = i == tranches - 1 or (i >= 2 * len(PHASES) and all(p in killed for p in long_phases))
        end = len(files) if last else (i + 1) * len(files) // tranches
        for f in files[i * len(files) // tranches : end]:
            target = crashed.landing_dir / f.path.relative_to(reference.landing_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f.path, target)
        missed = [p for p in long_phases if p not in killed]
        aimed = i >= 2 * len(PHASES) and missed
        phase = missed[0] if aimed else PHASES[i % len(PHASES)]
        delay = 0.0 if phase == "after_delta_commit" else rng.uniform(0.0, 0.05)
        if kill_in_phase(crashed, phase, delay):
            killed.append(phase)
        if last:
            break
    ingest(crashed)
    ingest(crashed)  # and once more with nothing new
    # Every long phase was killed in (else the folders moved: see PHASES); the commit gap is
    # too short to promise.
    assert set(long_phases) <= set(killed), killed
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


def test_a_schema_write_cut_short_by_a_kill_does_not_stop_later_loads(settings, workspace):
    """dlt writes a schema to a temporary file and renames it; a loader killed in between
    leaves the file, which dlt then takes for a schema (and records in its state) and every
    later load failed on (InvalidSchemaName at step=sync) until someone deleted it by hand."""
    import orjson

    land_simulated(settings, 300)
    workspace.ingest()
    work = settings.dlt_pipelines_dir / BRONZE_PIPELINE_NAME
    (work / "schemas" / "0123456789abcdef").write_bytes(b"")  # the kill's leftover
    state = orjson.loads((work / "state.json").read_bytes())
    state["schema_names"] = sorted([*state["schema_names"], "0123456789abcdef"])
    (work / "state.json").write_bytes(orjson.dumps(state))
    before = workspace.bronze().num_rows

    land_simulated(settings, 300, seed=10)
    workspace.ingest()
    assert workspace.bronze().num_rows > before
    assert not (work / "schemas" / "0123456789abcdef").exists()
