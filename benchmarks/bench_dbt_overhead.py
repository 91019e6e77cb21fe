"""What dbt costs beyond its own SQL: one minute's incremental build (the pipeline's
``dbt build`` arguments, as the minute run passes them: seeds and upstream tests left out
between their runs) through dbt, and then every SQL statement that build sent, replayed in
order in one DuckDB connection on a copy of the warehouse taken just before it. Target: dbt's
time at most 2x the direct time, at 1 M and at 10 M events of history.

dbt's side is the whole command: process start, imports, (partial) parse, the graph, Jinja,
its metadata queries and per-node bookkeeping, the SQL, and closing the database (which
checkpoints the minute's WAL into the file). The direct side is the SQL alone, the metadata
queries included (it is what dbt sent), and the same close. Python models run Python, not
SQL: their nodes' statements are left out of the replay and their execution time, as dbt
measured it, is added to the direct side (they cost the same either way).

Each size is a data directory with that much history, fully built: made here as
``bench_incremental`` makes them (simulated traffic, loaded, tiled back in time), or given with
``--homes`` (directories kept by ``bench_incremental --keep``; a minute of traffic is added to
them). The figure is the median of ``--minutes`` minutes per size.

    python -m benchmarks.bench_dbt_overhead --sizes 1000000 10000000
    python -m benchmarks.bench_dbt_overhead --homes /tmp/kept-1m /tmp/kept-10m
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb

from benchmarks.bench_incremental import History, KeptHistory, land_traffic
from ingestion.pipeline import run_ingest
from lakepulse.core.duck import connect
from lakepulse.core.settings import DBT_PROJECT_DIR, Settings, disable_telemetry
from lakepulse.warehouse.dbt import build_args, dbt_command, remember_build

TARGET_RATIO = 2.0
TRANSACTION_CONTROL = re.compile(r"^\s*(/\*.*?\*/\s*)?(begin|commit|rollback)\b", re.I | re.S)
"""dbt's threads each hold a transaction on their own cursor; one connection autocommits."""


@dataclass
class Minute:
    dbt_s: float
    direct_s: float
    close_s: float
    python_s: float
    statements: int
    nodes: int
    sql_in_dbt_s: float

    @property
    def ratio(self) -> float:
        return self.dbt_s / self.direct_total_s

    @property
    def direct_total_s(self) -> float:
        """The SQL, the close that checkpoints it, and the Python models."""
        return self.direct_s + self.close_s + self.python_s


def dbt_sql_log(log_dir: Path) -> tuple[list[tuple[str, str]], float]:
    """The statements dbt sent, in order, as (node unique_id, sql), from its JSON log file, and
    the seconds dbt itself reported they took."""
    statements, elapsed = [], 0.0
    for line in (log_dir / "dbt.log").read_text().splitlines():
        event = json.loads(line)
        name = event["info"]["name"]
        if name == "SQLQuery":
            statements.append(
                (event["data"].get("node_info", {}).get("unique_id", ""), event["data"]["sql"])
            )
        elif name == "SQLQueryStatus":
            elapsed += float(event["data"].get("elapsed", 0.0))
    return statements, elapsed


def python_nodes(settings: Settings) -> dict[str, float]:
    """Nodes of the last dbt command that ran no replayable SQL, and the seconds each took:
    Python models, and seeds (dbt logs their COPY abridged) when their CSVs changed."""
    manifest = json.loads(settings.dbt_manifest_path.read_text())
    results = json.loads((settings.dbt_target_dir / "run_results.json").read_text())["results"]
    return {
        r["unique_id"]: r["execution_time"]
        for r in results
        if manifest["nodes"].get(r["unique_id"], {}).get("language") == "python"
        or r["unique_id"].startswith("seed.")
    }


def replay(
    database: Path, statements: list[tuple[str, str]], skip: set[str]
) -> tuple[float, float]:
    """Seconds to run ``statements`` (but those of ``skip`` nodes) in one DuckDB connection,
    and seconds to close it. Closing checkpoints the WAL into the database file, as dbt's
    close at the end of its command does (checkpoint_threshold 1GB on both sides keeps either
    from checkpointing earlier): both sides end with the same file written."""
    conn = connect(str(database))
    try:
        conn.execute("set TimeZone = 'UTC'")
        conn.execute("set checkpoint_threshold = '1GB'")
        started = time.perf_counter()
        for node, statement in statements:
            if node in skip or TRANSACTION_CONTROL.match(statement):
                continue
            try:
                conn.execute(statement)
            except duckdb.Error as err:
                raise SystemExit(f"replay failed in {node}: {err}\n{statement[:2000]}") from err
        sql_s = time.perf_counter() - started
    except BaseException:
        conn.close()
        raise
    closing = time.perf_counter()
    conn.close()
    return sql_s, time.perf_counter() - closing


def measure_minute(history: History, seed: int, scratch: Path) -> Minute:
    """Add a minute of traffic, then build it through dbt and again directly, on the same
    warehouse copy."""
    settings = history.settings
    history.reached = land_traffic(
        settings, 60_000, history.reached + timedelta(seconds=1), seed=history.minute_seed(seed)
    )
    run_ingest(settings)
    copy_dir = scratch / f"copy-{history.size}-{seed}"
    copy_dir.mkdir()
    warehouse = settings.warehouse_path
    shutil.copy2(warehouse, copy_dir / warehouse.name)
    logs = scratch / f"logs-{history.size}-{seed}"  # a log of its own: dbt appends
    args = build_args(settings=settings)
    started = time.perf_counter()
    subprocess.run(
        [
            *dbt_command(settings, *args),
            "--log-path",
            str(logs),
            "--log-format-file",
            "json",
            "--log-level-file",
            "debug",
        ],
        env=settings.process_env(),
        cwd=DBT_PROJECT_DIR,
        check=True,
        capture_output=True,
    )
    dbt_s = time.perf_counter() - started
    remember_build(settings, args)  # as the pipeline does after each build
    statements, sql_in_dbt = dbt_sql_log(logs)
    python = python_nodes(settings)
    nodes = len(json.loads((settings.dbt_target_dir / "run_results.json").read_text())["results"])
    direct_s, close_s = replay(copy_dir / warehouse.name, statements, set(python))
    shutil.rmtree(copy_dir)
    return Minute(
        dbt_s, direct_s, close_s, sum(python.values()), len(statements), nodes, sql_in_dbt
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--homes", type=Path, nargs="+", help="kept data directories instead")
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--base", type=int, default=1_000_000, help="simulated events per copy")
    args = parser.parse_args()
    disable_telemetry()
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.homes:
            histories = [KeptHistory(home) for home in args.homes]
        else:
            histories = []
            for size in args.sizes:
                home = stack.enter_context(tempfile.TemporaryDirectory())
                histories.append(History(size, home, args.base, "days"))
                print(f"  history {size:,} built", flush=True)
        minutes: dict[int, list[Minute]] = {id(h): [] for h in histories}
        for history in histories:  # a first minute builds what changed in the project
            warm = measure_minute(history, 99, scratch)
            print(f"  {history.size:>11,} events: warm-up minute, {warm.nodes} nodes", flush=True)
        for seed in range(100, 100 + args.minutes):
            for history in histories:  # sizes alternate: host load falls on both
                minute = measure_minute(history, seed, scratch)
                minutes[id(history)].append(minute)
                print(
                    f"  {history.size:>11,} events: dbt {minute.dbt_s:5.1f} s, direct "
                    f"{minute.direct_s:5.1f} s + close (checkpoint) {minute.close_s:4.1f} s "
                    f"+ Python models {minute.python_s:4.1f} s "
                    f"({minute.statements} statements, {minute.nodes} nodes): {minute.ratio:.2f}x",
                    flush=True,
                )
    print("dbt's minute build against the same SQL run directly (median of the minutes):")
    for history in histories:
        runs = minutes[id(history)]
        ratio = statistics.median(m.ratio for m in runs)
        dbt_s = statistics.median(m.dbt_s for m in runs)
        direct = statistics.median(m.direct_total_s for m in runs)
        sql = statistics.median(m.sql_in_dbt_s for m in runs)
        print(
            f"  history {history.size:>11,}: dbt {dbt_s:5.1f} s, direct {direct:5.1f} s "
            f"(SQL as dbt timed it {sql:5.1f} s); ratio {ratio:.2f}   (target <= {TARGET_RATIO:.0f})"
        )


if __name__ == "__main__":
    main()
