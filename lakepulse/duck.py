"""DuckDB connections with the Delta extension loaded from its PyPI wheel.

DuckDB would otherwise try to download the extension on first use of ``delta_scan``, which
cannot work offline; every DuckDB connection lakepulse opens goes through here.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import duckdb_extension_delta


def delta_extension_path() -> Path:
    base = Path(duckdb_extension_delta.__file__).parent / "extensions"
    return base / f"v{duckdb.__version__}" / "delta.duckdb_extension"


def load_delta(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"LOAD '{delta_extension_path()}'")


def connect(path: str | Path = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(
        str(path),
        read_only=read_only,
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    load_delta(conn)
    return conn
