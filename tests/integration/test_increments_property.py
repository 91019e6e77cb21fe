"""Property: after every increment, every model equals a full refresh of the same bronze.

hypothesis writes the event histories of a few visitors and users, with what disorder a shop
really sends: order ids shared across visits and devices, late copies of an order with an
earlier timestamp, duplicates (the same messageId again), experiment exposures re-sent
earlier with another variation, identify calls mid-way, and arrival shuffled across
increments of random sizes. Each history is one tenant, so one example checks many histories
with the same few dbt builds; a difference names the tenant, whose history is printed.

``LAKEPULSE_PROPERTY_EXAMPLES`` (default 100) sets the number of histories: CI checks 100, each
after each of its 4 increments (~150 s, a twelfth of CI's time), and a change to an incremental
model or to the pipeline's loop is checked with a long run (``LAKEPULSE_PROPERTY_EXAMPLES=600
pytest --timeout 0 tests/integration/test_increments_property.py``, ~14 minutes; the suite's
600 s limit per test stops a run of much over 300). The run costs 8 dbt invocations however
many histories there are, but the minute-grain marts grow with them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.integration.test_incremental_marts import land, warehouse_tables

pytestmark = pytest.mark.integration

HISTORIES = int(os.environ.get("LAKEPULSE_PROPERTY_EXAMPLES", "100"))
INCREMENTS = 4
DAY0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)

DEVICES = ["d0", "d1", "d2", "d3"]
USERS = ["u0", "u1", "u2"]
ORDERS = ["o0", "o1", "o2"]
# Minutes after DAY0: close enough to chain sessions (30 min timeout) and to bridge them late,
# far enough to make new ones. A few histories span three days (days since, cohorts, 24 h
# returns); most stay within hours, since the minute-grain marts cost a row per minute.
SPANS = [240, 240, 240, 4320]


def minutes(span: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, span), st.sampled_from([0, 29, 30, 31, 59, 60, span]))


JOURNEY = [
    ("page", "Home"),
    ("track", "Product Viewed"),
    ("track", "Product Added"),
    ("track", "Cart Viewed"),
    ("track", "Checkout Started"),
]


@st.composite
def history(draw) -> list[dict]:
    """One tenant's messages in event order; the arrival order is drawn afterwards."""
    messages: list[dict] = []
    span = draw(st.sampled_from(SPANS))

    def send(device: str, user: str | None, minute: int, kind: str, name: str | None, **extra):
        message = {
            "type": kind,
            "messageId": f"m{len(messages)}",
            "anonymousId": device,
            "timestamp": (DAY0 + timedelta(minutes=minute)).isoformat(),
        }
        if user is not None:
            message["userId"] = user
        if kind == "track":
            message["event"] = name
        elif kind == "page":
            message["name"] = name
        messages.append(message | extra)

    for _ in range(draw(st.integers(1, 8))):
        device = draw(st.sampled_from(DEVICES))
        user = draw(st.none() | st.sampled_from(USERS))
        minute = draw(minutes(span))
        step = draw(st.sampled_from(["browse", "order", "identify", "exposure", "alias"]))
        if step == "browse":
            for kind, name in JOURNEY[: draw(st.integers(1, len(JOURNEY)))]:
                send(device, user, minute, kind, name)
                minute += draw(st.integers(0, 3))
        elif step == "order":
            properties = {
                "order_id": draw(st.sampled_from(ORDERS)),
                "revenue": draw(st.sampled_from([10, 25, 47.37])),
                "products": [{"product_id": "sku-1"}],
            }
            send(device, user, minute, "track", "Order Completed", properties=properties)
        elif step == "identify":
            send(device, draw(st.sampled_from(USERS)), minute, "identify", None)
        elif step == "alias":
            send(device, None, minute, "alias", None, previousId=draw(st.sampled_from(DEVICES)))
            messages[-1]["userId"] = draw(st.sampled_from(USERS))
        else:
            properties = {
                "experiment_id": "checkout_button",
                "variation_id": draw(st.sampled_from(["control", "green"])),
            }
            send(device, user, minute, "track", "Experiment Viewed", properties=properties)

    # Disorder a shop really sends: an order's late copy (another messageId, an earlier time,
    # maybe another device), a duplicate (the same messageId), an exposure re-sent earlier.
    for _ in range(draw(st.integers(0, 4))):
        original = draw(st.sampled_from(messages))
        fault = draw(st.sampled_from(["copy_earlier", "duplicate", "other_device"]))
        if fault == "duplicate":
            messages.append(json.loads(json.dumps(original)))
            continue
        copy = json.loads(json.dumps(original)) | {"messageId": f"m{len(messages)}"}
        moved = DAY0 + timedelta(minutes=draw(minutes(span)))
        copy["timestamp"] = moved.isoformat()
        if fault == "other_device":
            copy["anonymousId"] = draw(st.sampled_from(DEVICES))
        if copy.get("event") == "Experiment Viewed":
            copy["properties"]["variation_id"] = draw(st.sampled_from(["control", "green"]))
        messages.append(copy)
    return messages


@st.composite
def arrivals(draw) -> list[list[dict]]:
    """A history shuffled and cut into ``INCREMENTS`` arrivals of random sizes."""
    messages = draw(st.permutations(draw(history())))
    cuts = sorted(draw(st.lists(st.integers(0, len(messages)), min_size=3, max_size=3)))
    bounds = [0, *cuts, len(messages)]
    return [messages[bounds[i] : bounds[i + 1]] for i in range(INCREMENTS)]


def build(workspace, full_refresh: bool = False) -> None:
    """Every model, incrementally or as a full refresh: the pipeline's build the first time
    (seeds and tests too), then ``dbt run`` (the same models in the same order; the tests of
    the same rows ran in the first build). A failure shows dbt's own errors: a build that
    stops fails the property too (an increment the models cannot take)."""
    from lakepulse.warehouse.dbt import run_dbt

    try:
        if not workspace.settings.warehouse_path.exists():
            workspace.build()
        else:
            run_dbt(
                workspace.settings,
                "run",
                *(["--full-refresh"] if full_refresh else []),
                capture=True,
            )
    except subprocess.CalledProcessError as failed:
        errors = [line for line in (failed.stdout or "").splitlines() if "rror" in line]
        pytest.fail("dbt failed:\n" + "\n".join(errors[-30:]))


def eval_tenant(row: str) -> str:
    """The tenant of a row's repr (the first column of every model is tenant_id)."""
    return row.split("'")[1] if row.startswith("('") else row[:40]


def differing_tenants(incremental: dict, rebuilt: dict) -> dict[str, set[str]]:
    """table -> the tenants whose rows differ (rows are tuples starting with tenant_id)."""
    differences = {}
    for table, rows in rebuilt.items():
        if incremental.get(table) != rows:
            extra = {repr(row): row for row in incremental.get(table, [])}.keys() ^ {
                repr(row) for row in rows
            }
            differences[table] = {eval_tenant(row) for row in extra} or {"(row counts)"}
    return differences


def differing_rows(incremental: list, rebuilt: list, tenants: list[str]) -> list[str]:
    """The rows of ``tenants`` in one side only, marked ``-`` (increment) or ``+`` (full
    refresh); at most 20, to read beside the history."""
    kept, wanted = set(map(repr, incremental)), set(map(repr, rebuilt))
    shown = [f"- {row}" for row in sorted(kept - wanted)] + [
        f"+ {row}" for row in sorted(wanted - kept)
    ]
    return [row for row in shown if eval_tenant(row[2:]) in tenants][:20]


def generated_histories(count: int) -> list[list[list[dict]]]:
    """``count`` histories by arrival, each one a hypothesis example. Collected first and
    built together (one tenant each): a dbt build costs about the same for one history as for
    hundreds, and a difference names its tenant, whose history the failure prints (hypothesis
    could not shrink it faster than it can be read)."""
    histories: list[list[list[dict]]] = []

    @hsettings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(arrivals())
    def collect(world: list[list[dict]]) -> None:
        histories.append(world)

    collect()
    return histories


def assert_every_increment_equals_a_full_refresh(settings, workspace, worlds) -> None:
    """Land each world's arrivals one increment at a time (world ``i`` is tenant ``ti``) and
    compare every model with a full refresh of the same bronze after each increment."""
    saved = settings.home / "incremental.duckdb"

    for increment in range(INCREMENTS):
        land(
            settings,
            [(f"t{i}", message) for i, world in enumerate(worlds) for message in world[increment]],
            # an hour apart, so the loader's 30-minute duplicate window does not span two
            received=datetime.now(UTC) - timedelta(hours=INCREMENTS - increment),
        )
        workspace.ingest()
        build(workspace)
        incremental = warehouse_tables(settings)
        # the full refresh runs on a copy; the next increment goes on from the incremental one
        shutil.copyfile(settings.warehouse_path, saved)
        build(workspace, full_refresh=True)
        rebuilt = warehouse_tables(settings)
        shutil.copyfile(saved, settings.warehouse_path)

        differences = differing_tenants(incremental, rebuilt)
        if differences:
            tenants = sorted(set().union(*differences.values()))
            shown = {
                tenant: worlds[int(tenant[1:])]
                for tenant in tenants[:3]
                if tenant.startswith("t") and tenant[1:].isdigit()
            }
            rows = {
                table: differing_rows(incremental.get(table, []), rebuilt[table], tenants[:3])
                for table in differences
            }
            pytest.fail(
                f"increment {increment}: {differences}\n"
                f"rows only in the increment (-) or only in the full refresh (+): "
                f"{json.dumps(rows, indent=1, default=str)}\n"
                f"histories by arrival: {json.dumps(shown, indent=1)}"
            )


def test_every_increment_equals_a_full_refresh(settings, workspace):
    worlds = generated_histories(HISTORIES)
    assert len(worlds) == HISTORIES
    assert_every_increment_equals_a_full_refresh(settings, workspace, worlds)


def test_histories_the_property_once_found(settings, workspace):
    """Histories that random draws once failed, kept so they are checked on every run. Each
    is a list of increments of messages, as the property prints it:

    - a self-alias (previousId = anonymousId = d1) and a chain d3 -> d2 -> u0, with d3
      aliased to u1 by d1 in the next increment (session 29's clean clone)."""
    found = json.loads((Path(__file__).parent / "found_histories.json").read_text())
    assert_every_increment_equals_a_full_refresh(settings, workspace, found)
