"""The landing log: durable, immutable, partitioned by tenant, readable as Arrow."""

import os
import shutil

import pyarrow as pa

from ingestion.landing import LandingLog, encode_rows, partition_for, read_files


def test_partition_is_stable_and_bounded():
    assert partition_for("acme") == partition_for("acme")
    assert 0 <= partition_for("acme", 16) < 16


def test_write_publishes_complete_files_only(tmp_path):
    log = LandingLog(tmp_path)
    path = log.write("acme", "events", [{"a": 1}, {"a": 2}])
    assert path.read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert path.parent.name == f"p={partition_for('acme'):02d}"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")]
    assert log.write("acme", "events", []) is None


def test_a_partition_directory_removed_while_writing_is_made_again(tmp_path):
    log = LandingLog(tmp_path)
    first = log.write("acme", "events", [{"a": 1}])
    shutil.rmtree(first.parent)  # the writer remembers it made this directory
    second = log.write("acme", "events", [{"a": 2}])
    assert second.read_bytes() == b'{"a":2}\n'


def test_files_are_listed_in_publication_order_per_kind(tmp_path):
    log = LandingLog(tmp_path)
    first = log.write("acme", "events", [{"a": 1}])
    log.write("acme", "rejected", [{"a": 2}])
    second = log.write("acme", "events", [{"a": 3}])
    assert [f.path for f in log.files("events")] == [first, second]
    assert [f.kind for f in log.files()] == ["events", "rejected", "events"]
    assert log.latest_name() == max(f.name for f in log.files())


def test_temporary_files_are_invisible(tmp_path):
    log = LandingLog(tmp_path)
    log.write("acme", "events", [{"a": 1}])
    part = next(tmp_path.iterdir())
    (part / ".tmp-abandoned").write_text('{"a": 9}')
    assert len(list(log.files())) == 1


def test_read_files_applies_schema_and_ignores_unknown_fields(tmp_path):
    log = LandingLog(tmp_path)
    log.write("acme", "events", [{"a": 1, "b": "x", "zzz": 1}])
    log.write("acme", "events", [{"a": 2}])
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    table = read_files(list(log.files()), schema)
    assert table.schema == schema
    assert table.to_pylist() == [{"a": 1, "b": "x"}, {"a": 2, "b": None}]


def test_lines_that_do_not_fit_the_schema_are_set_aside(tmp_path):
    log = LandingLog(tmp_path)
    log.write("acme", "events", [{"a": 1}, {"a": "not a number"}, {"a": 3}])
    conflicts = []
    table = read_files(list(log.files()), pa.schema([("a", pa.int64())]), conflicts)
    assert table["a"].to_pylist() == [1, 3]
    assert [(c.line_no, c.line) for c in conflicts] == [(1, b'{"a":"not a number"}')]


def test_file_names_drawn_after_a_fork_differ_from_the_parents():
    """Landing file names take their random part from a per-process generator: a forked
    writer (a Dagster run, a worker) must not draw the same names as its parent, or one
    rename could replace another's file."""
    from ingestion import landing

    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports its first draw and exits at once
        os.write(write_end, landing._token().encode())
        os._exit(0)
    os.waitpid(child, 0)
    os.close(write_end)
    child_token = os.read(read_end, 64).decode()
    os.close(read_end)
    assert len(child_token) == 12 and child_token != landing._token()


def test_compiled_rows_read_back_as_the_interpreted_ones(tmp_path):
    """The compiled pass's rows leave their null columns out of the file; the loader's reader
    gives the same bronze table as for ``normalize``'s rows, which write every column."""
    from datetime import UTC, datetime

    import orjson

    from ingestion.contract import LANDING_SCHEMA, Batch, compiled_row, normalize

    received = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    messages = [
        {
            "type": "track",
            "event": "Order Completed",
            "messageId": "m-1",
            "userId": "u-1",
            "timestamp": "2026-11-22T11:00:00Z",
            "properties": {"order_id": "o-1", "revenue": 12.5},
            "context": {"page": {"url": "https://s.example/c"}, "locale": "de-DE"},
        },
        {"type": "page", "messageId": "m-2", "anonymousId": "a-2", "name": "Home"},
    ]
    batch = Batch("acme", b"s" * 32, received)
    log = LandingLog(tmp_path)
    compiled = log.write("acme", "events", [compiled_row(orjson.dumps(m), batch) for m in messages])
    assert b"null" not in compiled.read_bytes()
    interpreted = log.write(
        "acme",
        "events",
        [normalize(m, tenant_id="acme", secret=b"s" * 32, received_at=received) for m in messages],
    )
    files = {f.path: f for f in log.files("events")}
    ours = read_files([files[compiled]], LANDING_SCHEMA)
    theirs = read_files([files[interpreted]], LANDING_SCHEMA)
    assert ours.equals(theirs)
    assert ours.column("revenue").to_pylist() == [12.5, None]
    assert ours.column("locale").to_pylist() == ["de-DE", None]


def test_a_log_keeping_its_directories_open_survives_their_removal(tmp_path):
    """The collector's log keeps partition directories open (no directory opened a round); a
    partition removed meanwhile is made and opened again, and nothing is left open after."""
    import gc

    def open_under(path) -> list[str]:
        """What this process holds open under ``path`` (a count of all its descriptors moved
        with whatever else the test process opened or collected meanwhile)."""
        targets = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:  # closed meanwhile (the listing's own descriptor)
                continue
            if target.startswith(str(path)):
                targets.append(target)
        return targets

    log = LandingLog(tmp_path, keep_dirs_open=True)
    first = log.write("acme", "events", [{"a": 1}])
    assert first.read_bytes() == b'{"a":1}\n'
    assert open_under(tmp_path)  # the partition's directories, kept open
    shutil.rmtree(first.parent)
    second = log.write("acme", "events", [{"a": 2}])
    assert second.parent == first.parent and second.read_bytes() == b'{"a":2}\n'
    assert [f.path for f in log.files()] == [second]
    assert not [p for p in second.parent.iterdir() if p.name.startswith(".tmp")]
    del log
    gc.collect()
    assert open_under(tmp_path) == []


def test_encoded_parts_are_published_as_one_file_in_order(tmp_path, monkeypatch):
    """A group commit round's requests, encoded apart, land as one file: one ``writev`` of the
    parts, written on after a short write, and joined past ``IOV_MAX`` parts."""
    import ingestion.landing as landing

    parts = [encode_rows([{"a": i}, {"b": i}]) for i in range(3)]
    expected = b"".join(parts)
    for keep_open in (False, True):
        log = LandingLog(tmp_path / str(keep_open), keep_dirs_open=keep_open)
        assert log.write_encoded("acme", "events", parts).read_bytes() == expected

    writev = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, buffers: writev(fd, [buffers[0][:5]]))
    log = LandingLog(tmp_path / "short", keep_dirs_open=True)
    assert log.write_encoded("acme", "events", parts).read_bytes() == expected

    monkeypatch.setattr(landing, "_IOV_MAX", 2)
    assert log.write_encoded("acme", "events", parts).read_bytes() == expected
