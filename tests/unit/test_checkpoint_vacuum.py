"""The worker's steady checkpoints defer DuckDB's vacuum (``checkpoint_deferring_vacuum``), and
the database's next ordinary checkpoint still does it."""

from __future__ import annotations

import duckdb

from lakepulse.core.duck import checkpoint_deferring_vacuum


def row_groups(conn: duckdb.DuckDBPyConnection) -> int:
    query = "select count(distinct row_group_id) from pragma_storage_info('orders')"
    return conn.execute(query).fetchone()[0]


def test_a_steady_checkpoint_leaves_thinned_row_groups_to_the_next_ordinary_one(tmp_path):
    conn = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    conn.execute(
        "create table orders as select range as id, 'order ' || range as name from range(600000)"
    )
    conn.execute("checkpoint")
    written = row_groups(conn)
    assert written >= 5  # 122,880 rows a row group
    conn.execute("delete from orders where id % 10 < 6")  # every row group loses 60 %

    checkpoint_deferring_vacuum(conn)
    assert row_groups(conn) == written  # written, not merged
    assert conn.execute("select count(*) from orders").fetchone()[0] == 240_000

    conn.execute("insert into orders values (-1, 'late order')")
    conn.execute("checkpoint")  # the vacuum is back: the thinned groups merge
    assert row_groups(conn) < written
    assert conn.execute("select count(*) from orders").fetchone()[0] == 240_001
    conn.close()
