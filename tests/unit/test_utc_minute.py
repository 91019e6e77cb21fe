"""The macro ``utc_minute`` (dbt_project/macros/utc_minute.sql) gives the minute DuckDB's own
``date_trunc('minute', ...)`` gives, in any session time zone: the minute-grain models switched
to it for speed, and their rows must not move by a minute."""

from __future__ import annotations

import duckdb
import jinja2
import pytest

from lakepulse.core.settings import DBT_PROJECT_DIR

EDGES = [
    "1969-12-31 23:59:30.5+00",  # before the epoch: floored, not truncated towards it
    "1969-12-31 23:59:00+00",
    "1970-01-01 00:00:00+00",
    "2026-03-29 01:30:45+00",  # a daylight-saving change in Europe
    "2026-12-07 17:52:59.999999+00",
    "2026-12-07 17:53:00+00",
]


def utc_minute_sql(expression: str) -> str:
    source = (DBT_PROJECT_DIR / "macros" / "utc_minute.sql").read_text()
    template = jinja2.Environment().from_string(source)
    return template.module.utc_minute(expression)


@pytest.mark.parametrize(
    ("zone", "since"),
    [
        ("UTC", "1900-01-01 00:00:00+00"),
        # offsets of whole minutes, half hours included; before 1972 some zones' local mean
        # time had seconds in its offset, and a local minute is not a UTC one there
        ("Europe/Berlin", "1972-01-01 00:00:00+00"),
        ("Asia/Kolkata", "1972-01-01 00:00:00+00"),
        ("America/St_Johns", "1972-01-01 00:00:00+00"),
    ],
)
def test_utc_minute_is_date_truncs_minute(zone, since):
    conn = duckdb.connect()
    conn.execute(f"set TimeZone = '{zone}'")
    conn.execute(
        "create table stamps as select unnest(?::timestamptz[]) as stamp "
        "union all select null "
        "union all select ?::timestamptz "
        "+ to_microseconds((random() * 4e15)::bigint) from range(20000)",
        [EDGES, since],
    )
    differing = conn.execute(
        f"select stamp, date_trunc('minute', stamp), {utc_minute_sql('stamp')} from stamps "
        f"where date_trunc('minute', stamp) is distinct from {utc_minute_sql('stamp')}"
    ).fetchall()
    assert differing == []
    [(rows,)] = conn.execute("select count(*) from stamps").fetchall()
    assert rows == len(EDGES) + 20001
