"""Funnels are data: an analyst edits or removes one in the seeds, and the next incremental run
gives the marts a full refresh would, without a ``--full-refresh`` by hand.

The funnel models keep the version of the definition each row was computed with; a run that
finds another version recomputes every user and recounts every day. The known answer below is
written from the history by hand: the days and steps that no longer exist must go too.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest

from lakepulse.core.settings import DBT_PROJECT_DIR
from tests.conftest import dbt_in_project_copy
from tests.integration.test_incremental_marts import land

pytestmark = pytest.mark.integration

DAY = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

FUNNEL_MODELS = ("funnels", "funnel_steps", "int_funnel_progress", "mart_funnel_conversion")
MART = (
    "select funnel_id, entry_date::varchar, step_number, step_event, users "
    "from marts.mart_funnel_conversion order by all"
)
PROGRESS = (
    "select funnel_id, user_key, entry_date::varchar, steps_reached "
    "from intermediate.int_funnel_progress order by all"
)


def track(message_id: str, device: str, at: datetime, event: str, **properties) -> dict:
    return {
        "type": "track",
        "messageId": message_id,
        "anonymousId": device,
        "timestamp": at.isoformat(),
        "event": event,
        "properties": properties,
    }


def history() -> list[dict]:
    """e1 only views a product on day 1; e2 goes all the way to an order on day 2."""
    day2 = DAY + timedelta(days=1)
    journey = ["Product Viewed", "Product Added", "Cart Viewed", "Checkout Started"]
    return [
        track("a1", "e1", DAY, "Product Viewed"),
        *(
            track(f"b{i}", "e2", day2 + timedelta(minutes=i), event)
            for i, event in enumerate(journey)
        ),
        track(
            "b9", "e2", day2 + timedelta(minutes=9), "Order Completed", order_id="o1", revenue=10
        ),
    ]


def build_edited(settings, project, *args: str) -> None:
    dbt_in_project_copy(settings, project, "build", "--select", *FUNNEL_MODELS, *args)


def test_an_edited_and_a_removed_funnel_recount_every_day(settings, workspace, tmp_path):
    land(settings, [("shop", message) for message in history()])
    workspace.ingest()
    workspace.build()
    # before: purchase starts at a product view (both days), quick_checkout at an add to cart
    assert workspace.warehouse_sql(MART) == [
        ("purchase", "2026-11-20", 1, "Product Viewed", 1),
        ("purchase", "2026-11-21", 1, "Product Viewed", 1),
        ("purchase", "2026-11-21", 2, "Product Added", 1),
        ("purchase", "2026-11-21", 3, "Checkout Started", 1),
        ("purchase", "2026-11-21", 4, "Order Completed", 1),
        ("quick_checkout", "2026-11-21", 1, "Product Added", 1),
        ("quick_checkout", "2026-11-21", 2, "Cart Viewed", 1),
        ("quick_checkout", "2026-11-21", 3, "Checkout Started", 1),
    ]

    # The analyst's edit, in a copy of the project (other tests keep theirs): purchase now
    # starts at the cart, and quick_checkout is gone.
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("logs", "target"))
    (project / "seeds" / "funnels.csv").write_text(
        "funnel_id,description,order_mode,conversion_window_minutes\n"
        'purchase,"Cart to order, in order, within a day",ordered,1440\n'
    )
    (project / "seeds" / "funnel_steps.csv").write_text(
        "funnel_id,step_number,event_name\n"
        "purchase,1,Cart Viewed\n"
        "purchase,2,Checkout Started\n"
        "purchase,3,Order Completed\n"
    )
    build_edited(settings, project)

    # e1 never saw a cart: day 1 has no attempt any more, and its row goes with it
    expected_mart = [
        ("purchase", "2026-11-21", 1, "Cart Viewed", 1),
        ("purchase", "2026-11-21", 2, "Checkout Started", 1),
        ("purchase", "2026-11-21", 3, "Order Completed", 1),
    ]
    assert workspace.warehouse_sql(MART) == expected_mart
    assert workspace.warehouse_sql(PROGRESS) == [("purchase", "e2", "2026-11-21", 3)]

    # and a full refresh of the edited project agrees
    build_edited(settings, project, "--full-refresh")
    assert workspace.warehouse_sql(MART) == expected_mart
    assert workspace.warehouse_sql(PROGRESS) == [("purchase", "e2", "2026-11-21", 3)]
