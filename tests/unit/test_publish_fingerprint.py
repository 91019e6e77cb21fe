"""The publish's change detection: a mart's fingerprint changes with its content, whatever
its row count does, and not with its row order."""

from lakepulse.core.duck import connect
from lakepulse.warehouse.publish import fingerprint


def fingerprint_of(rows: str) -> str:
    duck = connect()
    try:
        duck.execute("attach ':memory:' as wh")
        duck.execute("create schema wh.marts")
        duck.execute(f"create table wh.marts.m as select * from (values {rows}) v(tenant_id, n)")
        duck.execute("use wh")  # the publish reads its source as the default database
        return fingerprint(duck, "m")
    finally:
        duck.close()


def test_same_rows_in_another_order_are_unchanged():
    assert fingerprint_of("('a', 1), ('b', 2)") == fingerprint_of("('b', 2), ('a', 1)")


def test_a_changed_value_with_the_same_row_count_is_a_change():
    assert fingerprint_of("('a', 1), ('b', 2)") != fingerprint_of("('a', 1), ('b', 3)")


def test_duplicate_rows_do_not_cancel_out():
    assert fingerprint_of("('a', 1), ('a', 1)") != fingerprint_of("('b', 2), ('b', 2)")
