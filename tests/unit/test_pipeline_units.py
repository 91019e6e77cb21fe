"""Pure pieces of the loader: batch dedupe and the per-partition cursor."""

import pyarrow as pa

from ingestion.landing import LOOKBACK_MICROS, LandingFile, advance_cursor, pending_files
from ingestion.pipeline import dedupe_last


def lf(micros: int, token: str = "aa") -> LandingFile:
    name = f"{micros:016d}-{token}.events.ndjson"
    return LandingFile("p=00", name, None)


def test_dedupe_keeps_the_last_copy_of_each_key():
    table = pa.table({"t": ["a", "a", "b", "a"], "m": ["1", "2", "1", "1"], "v": [1, 2, 3, 4]})
    out = dedupe_last(table, ("t", "m"))
    assert sorted(out.to_pylist(), key=lambda r: (r["t"], r["m"])) == [
        {"t": "a", "m": "1", "v": 4},
        {"t": "a", "m": "2", "v": 2},
        {"t": "b", "m": "1", "v": 3},
    ]


def test_cursor_skips_loaded_files_and_catches_late_published_ones():
    loaded = [lf(1_000_000), lf(2_000_000)]
    cursor = advance_cursor({}, loaded)
    late = lf(1_500_000, "bb")  # published after the load, with an earlier name
    newer = lf(3_000_000)
    assert pending_files([*loaded, late, newer], cursor) == [late, newer]


def test_cursor_forgets_names_older_than_the_lookback():
    old = lf(1_000_000)
    cursor = advance_cursor({}, [old])
    cursor = advance_cursor(cursor, [lf(1_000_000 + LOOKBACK_MICROS + 5)])
    assert old.name not in cursor["recent"]
    assert pending_files([old], cursor) == []
