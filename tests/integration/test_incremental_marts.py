"""The minute's incremental dbt run: the same events fed in several increments (with SDK
retries, late and out-of-order events and skewed clocks) and rebuilt in one full refresh give
identical tables, every model; hand-built events with known answers show what the increments
had to get right: a late event merging two sessions, a device that signs in later, a late
order landing in an old minute, a funnel completed by later events."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice

import duckdb
import pytest

from ingestion.contract import normalize
from ingestion.landing import LandingLog
from lakepulse.demo.simulator import Faults, SimConfig, TrafficGenerator
from tests.conftest import SIM_CLOCK

pytestmark = pytest.mark.integration

# Tables that are not a function of the events: the experiment history grows by one snapshot a
# run (its latest snapshot's time and count with it), alerts come from the sensor.
NOT_REBUILT = {"fct_experiment_snapshots", "mart_anomaly_alerts"}
SNAPSHOT_COLUMNS = {"mart_experiment_results": "* exclude (snapshot_at, snapshots)"}
INCREMENTAL = {
    "stg_events",
    "stg_orders",
    "stg_experiment_exposures",
    "int_identity_map",
    "int_customer_orders",
    "int_sessionized_events",
    "int_sessions",
    "fct_sessions",
    "dim_users",
    "int_funnel_events",
    "int_funnel_progress",
    "int_user_activity_days",
    "int_buyer_signals",
    "mart_buyer_signals",
    "int_experiment_assignments",
    "int_experiment_user_metrics",
    "mart_funnel_conversion",
    "mart_event_volume",
    "int_visitor_minutes",
    "mart_conversion_windows",
    "mart_revenue_velocity",
}
GOLD = "gold"


def at(hhmmss: str, day: str = "2026-11-20") -> str:
    return f"{day}T{hhmmss}+00:00"


def event(message_id: str, device: str, kind: str, name: str | None, when: str, **extra) -> dict:
    message = {"type": kind, "messageId": message_id, "anonymousId": device, "timestamp": when}
    if kind == "track":
        message["event"] = name
    elif kind == "page":
        message["name"] = name
    return message | extra


# Hand-built events by increment (arrival order). Times are event times.
GOLDEN = [
    [
        # d1: two visits 45 minutes apart (two sessions, for now).
        event("g1", "d1", "page", "Home", at("10:00:00")),
        event("g2", "d1", "track", "Product Viewed", at("10:05:00")),
        event("g3", "d1", "track", "Product Added", at("10:50:00")),
        event("g4", "d1", "track", "Checkout Started", at("10:52:00")),
        # d2: an anonymous visit across midnight and another in the morning.
        event("g5", "d2", "page", "Home", at("23:50:00", "2026-11-19")),
        event("g6", "d2", "track", "Product Viewed", at("00:10:00")),
        event("g7", "d2", "page", "Home", at("09:00:00")),
        # d3: one page view.
        event("g8", "d3", "page", "Home", at("10:00:00")),
        # d5 orders o5 at 12:05 (and holds it, for now).
        event("g14", "d5", "page", "Home", at("12:00:00")),
        event(
            "g15",
            "d5",
            "track",
            "Order Completed",
            at("12:05:00"),
            properties={"order_id": "o5", "revenue": 47.37},
        ),
    ],
    [
        # Late: d1's phone was offline; this event bridges its two visits into one session.
        event("g9", "d1", "track", "Cart Viewed", at("10:25:00")),
        event(
            "g10",
            "d1",
            "track",
            "Order Completed",
            at("10:53:00"),
            properties={"order_id": "o1", "revenue": 50},
        ),
        # d2 signs in as u2 (an identify call only): its sessions belong to u2 now.
        {
            "type": "identify",
            "messageId": "g11",
            "anonymousId": "d2",
            "userId": "u2",
            "timestamp": at("12:00:00"),
        },
        # A retry of g8 (same messageId): counted once.
        event("g8", "d3", "page", "Home", at("10:00:00")),
        # Late: an order placed at 10:01:30 arrives now, into minutes long built.
        event(
            "g12",
            "d3",
            "track",
            "Order Completed",
            at("10:01:30"),
            properties={"order_id": "o3", "revenue": 20},
        ),
    ],
    [
        # d3's confirmation page reloaded: o3 sent again, a new messageId, a minute later. The
        # order counts once, in its first minute and session.
        event(
            "g13",
            "d3",
            "track",
            "Order Completed",
            at("10:02:10"),
            properties={"order_id": "o3", "revenue": 20},
        ),
        # A client re-using g7's messageId two days later, under another device, received an
        # hour after the original (beyond the loader's window): bronze keeps it, but the first
        # copy wins; d4 never appears.
        event("g7", "d4", "page", "Home", at("09:00:00", "2026-11-22")),
        # o5 again, from another device and EARLIER (an offline queue flushed late): this
        # copy is the order's first completion now; d5's visit loses the order it held.
        event(
            "g16",
            "d6",
            "track",
            "Order Completed",
            at("11:00:00"),
            properties={"order_id": "o5", "revenue": 47.37},
        ),
    ],
]


ATTR = "attr"
SHOP = "https://shop.example"


def visit(message_id: str, device: str, when: str, url: str, **context) -> dict:
    """A page view of ``url``; ``context`` adds what the SDK sent besides the URL."""
    page = {"url": url} | context.pop("page", {})
    return event(message_id, device, "page", "Page", when, context={"page": page} | context)


# Hand-built users of tenant "attr" with known attribution, by increment.
ATTRIBUTION = [
    [
        # a4 came direct first; a campaign brings it back two days later (third increment).
        visit("a1", "a4", at("08:00:00"), f"{SHOP}/", page={"path": "/"}),
        # a5's first session came through campaign bf (the context wins over the URL's
        # utm_campaign); it returns 23 hours later (second increment).
        visit(
            "a2",
            "a5",
            at("12:00:00"),
            f"{SHOP}/?utm_campaign=other",
            page={"path": "/"},
            campaign={"name": "bf", "source": "newsletter", "medium": "email"},
        ),
        # a6: UTMs only in the URL (no context.campaign); back 25 hours later.
        visit(
            "a3",
            "a6",
            at("13:00:00"),
            f"{SHOP}/sale?utm_source=fb&utm_medium=cpc&utm_campaign=bf&utm_term=shoes"
            "&utm_content=ad+one",
            page={"path": "/sale"},
        ),
        # a7: the path only in the URL.
        visit("a4", "a7", at("14:00:00"), f"{SHOP}/products/sku-1?ref=home"),
        # a8: a server-side event without context opens the session; the page view after it
        # carries the landing and the campaign.
        event("a5", "a8", "track", "Product Viewed", at("15:00:00")),
        visit("a6", "a8", at("15:00:30"), f"{SHOP}/?utm_source=g&utm_medium=cpc&utm_campaign=bf"),
    ],
    [
        visit("a7", "a5", at("11:00:00", "2026-11-21"), f"{SHOP}/", page={"path": "/"}),
        visit("a8", "a6", at("14:00:00", "2026-11-21"), f"{SHOP}/", page={"path": "/"}),
    ],
    [
        visit(
            "a9",
            "a4",
            at("09:00:00", "2026-11-22"),
            f"{SHOP}/",
            page={"path": "/"},
            campaign={"name": "bf", "source": "newsletter", "medium": "email"},
        ),
    ],
]


# A device whose first session a late event changes while its second does not: int_sessions
# rebuilds both, the second unchanged (its last_loaded_at kept), and fct_sessions, which copies
# the devices int_sessions changed from their first changed session, must copy it too.
SCOPE = "scope"
SCOPE_EVENTS = [
    [
        event("s1", "e1", "page", "Home", at("08:00:00")),
        event("s2", "e1", "page", "Home", at("09:00:00")),
    ],
    [event("s3", "e1", "track", "Product Viewed", at("08:05:00"))],
    [],
]
SCOPE_SESSIONS = [("e1", "20 08:00", 2), ("e1", "20 09:00", 1)]

# Revenue velocity recomputes a tenant's minutes from the first one its changed sessions touch,
# and reads the orders of those minutes with their sessions. v1's session starts before that
# minute and holds an order after it: v2's new session (last increment) recomputes 10:05, which
# must still count v1's order (a session is read when it ends, not starts, at or after the
# minute).
VELOCITY = "velocity"
VELOCITY_EVENTS = [
    [
        event("v1", "v1", "page", "Home", at("09:50:00")),
        event(
            "v2",
            "v1",
            "track",
            "Order Completed",
            at("10:05:00"),
            properties={"order_id": "vo1", "revenue": 10},
        ),
    ],
    [],
    [event("v3", "v2", "page", "Home", at("10:00:00"))],
]
VELOCITY_MINUTE = (
    "select orders, revenue, cumulative_revenue from marts.mart_revenue_velocity "
    "where tenant_id = 'velocity' and campaign = '(all)' "
    "and minute_at = '2026-11-20 10:05:00+00'"
)

# Sliding windows count a converting visitor once, whatever they do between orders: w1 orders
# at 10:00, browses at 10:02 and orders again at 10:03 (a later increment); w2 only browses.
# The 5-minute window ending at 10:03 holds both visitors, w1 converting (once), two orders.
WINDOWS = "windows"
WINDOWS_EVENTS = [
    [
        event("w1", "w1", "page", "Home", at("10:00:00")),
        event(
            "w2",
            "w1",
            "track",
            "Order Completed",
            at("10:00:30"),
            properties={"order_id": "wo1", "revenue": 15},
        ),
        event("w3", "w2", "page", "Home", at("10:01:00")),
    ],
    [],
    [
        event("w4", "w1", "page", "Home", at("10:02:00")),
        event(
            "w5",
            "w1",
            "track",
            "Order Completed",
            at("10:03:00"),
            properties={"order_id": "wo2", "revenue": 5},
        ),
    ],
]
WINDOWS_AT_1003 = (
    "select window_minutes, visitors, converting_visitors, orders "
    "from marts.mart_conversion_windows "
    "where tenant_id = 'windows' and window_end_at = '2026-11-20 10:03:00+00' "
    "order by window_minutes"
)

CLOCK = "clock"

# Hand-built users of tenant "clock", whose clock-relative signals change while they send
# nothing: only c2 comes back, moving the tenant's clock (its latest event).
CLOCK_EVENTS = [
    [
        # c1 ordered on the 13th at 10:00: 7 days before the clock (the 20th, 09:00) plus 1 h.
        event(
            "k1",
            "c1",
            "track",
            "Order Completed",
            at("10:00:00", "2026-11-13"),
            properties={"order_id": "k-o1", "revenue": 30},
        ),
        # c3 was last here 29.5 days before the clock.
        event("k2", "c3", "page", "Home", at("20:00:00", "2026-10-21")),
        event("k3", "c2", "page", "Home", at("09:00:00")),
    ],
    # The clock moves to 10:30: c1's session leaves the 7-day window.
    [event("k4", "c2", "page", "Home", at("10:30:00"))],
    # The clock moves to the 21st, 08:00: a day more since c1's order; c3 leaves the 30 days.
    [event("k5", "c2", "page", "Home", at("08:00:00", "2026-11-21"))],
]
CLOCK_SIGNALS = (
    "select user_key, sessions_last_7d, sessions_last_30d, days_since_last_order "
    "from marts.mart_buyer_signals where tenant_id = 'clock' and user_key <> 'c2' order by 1"
)
CLOCK_EXPECTED = [
    [("c1", 1, 1, 7), ("c3", 0, 1, None)],
    [("c1", 0, 1, 7), ("c3", 0, 1, None)],
    [("c1", 0, 1, 8), ("c3", 0, 0, None)],
]


def simulated(events: int) -> list[tuple[str, dict]]:
    faults = Faults(duplicate_rate=0.05, late_rate=0.05, out_of_order=True, skew_rate=0.05)
    generator = TrafficGenerator(
        SimConfig(
            seed=21, tenants={"acme": "k1", "globex": "k2"}, visits_per_second=2, faults=faults
        ),
        clock=SIM_CLOCK,
    )
    return [
        (tenant, {k: v for k, v in message.items() if k != "_clock_skew_s"})
        for tenant, _, message in islice(generator.events(), events)
    ]


def land(settings, messages: list[tuple[str, dict]], received: datetime | None = None) -> None:
    received = received or datetime.now(UTC)
    by_tenant: dict[str, list[dict]] = {}
    for tenant, message in messages:
        by_tenant.setdefault(tenant, []).append(
            normalize(message, tenant_id=tenant, secret=b"s", received_at=received)
        )
    log = LandingLog(settings.landing_dir)
    for tenant, rows in by_tenant.items():
        log.write(tenant, "events", rows)


def warehouse_tables(settings) -> dict[str, list[tuple]]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        names = conn.sql(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('staging', 'intermediate', 'marts')"
        ).fetchall()
        return {
            table: sorted(
                conn.sql(
                    f"select {SNAPSHOT_COLUMNS.get(table, '*')} from {schema}.{table}"
                ).fetchall(),
                key=repr,
            )
            for schema, table in names
            if table not in NOT_REBUILT
        }


def ran_incrementally(settings, model: str) -> bool:
    """The model's last run inserted a batch into the model's table (replace_scope deletes
    the batch's scope first, append does not), not a rebuild. A rebuild of a model under
    contract inserts too, but into a new table (`<model>__dbt_tmp`) renamed in."""
    [path] = (settings.dbt_target_dir / "run").rglob(f"models/**/{model}.sql")
    return re.search(rf'insert into \S*"{model}" ', path.read_text()) is not None


def test_increments_equal_a_full_refresh_and_golden_answers(settings, workspace):
    traffic = simulated(9_000)
    increments = len(GOLDEN)
    for i, golden in enumerate(GOLDEN):
        part = traffic[i * len(traffic) // increments : (i + 1) * len(traffic) // increments]
        land(
            settings,
            part
            + [(GOLD, message) for message in golden]
            + [(ATTR, message) for message in ATTRIBUTION[i]]
            + [(CLOCK, message) for message in CLOCK_EVENTS[i]]
            + [(SCOPE, message) for message in SCOPE_EVENTS[i]]
            + [(VELOCITY, message) for message in VELOCITY_EVENTS[i]]
            + [(WINDOWS, message) for message in WINDOWS_EVENTS[i]],
            # an hour apart, so the loader's 30-minute window does not span two increments
            received=datetime.now(UTC) - timedelta(hours=increments - i),
        )
        workspace.ingest()
        workspace.build()
        assert workspace.warehouse_sql(CLOCK_SIGNALS) == CLOCK_EXPECTED[i], i
        if i == 0:
            before_late = workspace.warehouse_sql(
                "select count(*) from marts.fct_sessions where tenant_id = 'gold' "
                "and device_id = 'd1'",
            )
            assert before_late == [(2,)]
            assert workspace.warehouse_sql(
                "select user_key from marts.dim_users where tenant_id = 'gold' "
                "and user_key like 'd2%'",
            ) == [("d2",)]
            assert workspace.warehouse_sql(
                "select orders, revenue from marts.fct_sessions where tenant_id = 'gold' "
                "and device_id = 'd5'",
            ) == [(1, Decimal("47.37"))]

    # The increments carried late events: some loaded later happened before others loaded
    # earlier (not only the hand-built ones).
    [(late,)] = workspace.sql(
        "with loads as (select loaded_at, max(timestamp) as latest from raw.events "
        "where tenant_id <> 'gold' group by loaded_at) "
        "select count(*) from raw.events as e join loads as earlier "
        "on e.loaded_at > earlier.loaded_at and e.timestamp < earlier.latest "
        "where e.tenant_id <> 'gold'"
    )
    assert late > 0
    assert [m for m in sorted(INCREMENTAL) if not ran_incrementally(settings, m)] == []

    # Golden answers, after the increments.
    sessions = workspace.warehouse_sql(
        "select device_id, user_key, strftime(session_start_at at time zone 'UTC', '%d %H:%M'), "
        "events, orders, revenue "
        "from marts.fct_sessions where tenant_id = 'gold' order by device_id, session_start_at",
    )
    assert sessions == [
        ("d1", "d1", "20 10:00", 6, 1, 50),
        ("d2", "u2", "19 23:50", 2, 0, 0),
        ("d2", "u2", "20 09:00", 1, 0, 0),
        ("d3", "d3", "20 10:00", 3, 1, 20),
        ("d5", "d5", "20 12:00", 2, 0, 0),
        ("d6", "d6", "20 11:00", 1, 1, Decimal("47.37")),
    ]
    assert workspace.warehouse_sql(
        "select user_key, sessions, devices, first_seen_date::varchar, orders, revenue "
        "from marts.dim_users where tenant_id = 'gold' order by user_key",
    ) == [
        ("d1", 1, 1, "2026-11-20", 1, 50),
        ("d3", 1, 1, "2026-11-20", 1, 20),
        ("d5", 1, 1, "2026-11-20", 0, 0),
        ("d6", 1, 1, "2026-11-20", 1, Decimal("47.37")),
        ("u2", 2, 1, "2026-11-19", 0, 0),
    ]
    windows = dict(
        (minutes, (orders, revenue))
        for minutes, orders, revenue in workspace.warehouse_sql(
            "select window_minutes, orders, revenue from marts.mart_conversion_windows "
            "where tenant_id = 'gold' and window_end_at = '2026-11-20 10:01:00+00'",
        )
    )
    assert windows == {1: (1, 20), 5: (1, 20), 60: (1, 20)}
    reload_minute = workspace.warehouse_sql(
        "select window_minutes, orders, revenue, converting_visitors "
        "from marts.mart_conversion_windows "
        "where tenant_id = 'gold' and window_end_at = '2026-11-20 10:02:00+00' "
        "order by window_minutes",
    )
    assert reload_minute == [(1, 0, 0, 0), (5, 1, 20, 1), (60, 1, 20, 1)]
    assert workspace.warehouse_sql(
        "select funnel_id, steps_reached from intermediate.int_funnel_progress "
        "where tenant_id = 'gold' and user_key = 'd1' order by funnel_id",
    ) == [("purchase", 4), ("quick_checkout", 1)]
    assert workspace.warehouse_sql(
        "select sum(events)::int from marts.mart_event_volume where tenant_id = 'gold'",
    ) == [(16,)]
    assert workspace.sql(
        "select count(*) from raw.events where tenant_id = 'gold' and message_id = 'g7'"
    ) == [(2,)]
    assert workspace.warehouse_sql(
        "select device_id, strftime(event_at at time zone 'UTC', '%d %H:%M') "
        "from staging.stg_events where tenant_id = 'gold' and message_id = 'g7'",
    ) == [("d2", "20 09:00")]

    assert workspace.warehouse_sql(VELOCITY_MINUTE) == [(1, Decimal("10.00"), Decimal("10.00"))]
    # 1 minute (10:03): w1's second order; 5 and 60 minutes: w1 (converting once) and w2
    assert workspace.warehouse_sql(WINDOWS_AT_1003) == [(1, 1, 1, 1), (5, 2, 1, 2), (60, 2, 1, 2)]
    assert_attribution(workspace)
    assert (
        workspace.warehouse_sql(
            "select device_id, strftime(session_start_at at time zone 'UTC', '%d %H:%M'), events "
            f"from marts.fct_sessions where tenant_id = '{SCOPE}' order by session_start_at",
        )
        == SCOPE_SESSIONS
    )

    # And everything equals a rebuild from bronze.
    incremental = warehouse_tables(settings)
    workspace.build("--full-refresh")
    rebuilt = warehouse_tables(settings)
    assert set(incremental) == set(rebuilt)
    for table, rows in rebuilt.items():
        assert incremental[table] == rows, table
    assert_attribution(workspace)


def assert_attribution(workspace) -> None:
    """The hand-built users of ATTRIBUTION: acquisition is the first session's, UTMs and path
    fall back to the URL, and the 24 h return is measured from the acquiring session."""
    sessions = workspace.warehouse_sql(
        "select device_id, strftime(session_start_at at time zone 'UTC', '%d %H:%M'), "
        "landing_page, channel, utm_source, utm_medium, utm_campaign from marts.fct_sessions "
        f"where tenant_id = '{ATTR}' order by device_id, session_start_at",
    )
    assert sessions == [
        ("a4", "20 08:00", "/", "direct", None, None, None),
        ("a4", "22 09:00", "/", "email", "newsletter", "email", "bf"),
        ("a5", "20 12:00", "/", "email", "newsletter", "email", "bf"),
        ("a5", "21 11:00", "/", "direct", None, None, None),
        ("a6", "20 13:00", "/sale", "paid", "fb", "cpc", "bf"),
        ("a6", "21 14:00", "/", "direct", None, None, None),
        ("a7", "20 14:00", "/products/sku-1", "direct", None, None, None),
        ("a8", "20 15:00", "/", "paid", "g", "cpc", "bf"),
    ]
    assert workspace.warehouse_sql(
        "select utm_term, utm_content from staging.stg_events "
        f"where tenant_id = '{ATTR}' and message_id = 'a3'",
    ) == [("shoes", "ad one")]
    assert workspace.warehouse_sql(
        "select user_key, acquisition_channel, acquisition_campaign from marts.dim_users "
        f"where tenant_id = '{ATTR}' order by user_key",
    ) == [
        ("a4", "direct", None),
        ("a5", "email", "bf"),
        ("a6", "paid", "bf"),
        ("a7", "direct", None),
        ("a8", "paid", "bf"),
    ]
    assert workspace.warehouse_sql(
        "select campaign, acquired_users, returned_within_24h_users, return_rate_24h "
        f"from marts.mart_campaign_kpis where tenant_id = '{ATTR}'",
    ) == [("bf", 3, 1, 1 / 3)]


def test_a_message_is_told_from_a_held_one_by_its_id_not_its_key(settings, workspace):
    """stg_events finds the messages it holds by a 64-bit key: a key the table holds for
    another message (two messages can share one) must not drop a new message, and a copy of a
    held message must still be dropped."""
    land(
        settings,
        [
            (GOLD, event("k0", "d0", "page", "Home", at("09:00:00"))),
            (GOLD, event("k1", "d1", "page", "Home", at("10:00:00"))),
        ],
        received=datetime.now(UTC) - timedelta(hours=2),
    )
    workspace.ingest()
    workspace.build()
    # k0's row takes the key k2 will have: the same key, another message. The key is half of
    # MD5(tenant, 0x1f, message), read as DuckDB's md5_number reads the digest
    k2_key = int.from_bytes(hashlib.md5(f"{GOLD}\x1fk2".encode()).digest()[8:], "little")
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        conn.execute(
            "update staging.stg_events set message_key = ? where message_id = 'k0'", [k2_key]
        )
    land(
        settings,
        [
            (GOLD, event("k2", "d2", "page", "Home", at("10:01:00"))),
            # a client re-using k1's id an hour later: the first copy wins
            (GOLD, event("k1", "d3", "page", "Cart", at("11:00:00"))),
        ],
    )
    workspace.ingest()
    workspace.build()
    assert ran_incrementally(settings, "stg_events")
    assert workspace.warehouse_sql(
        "select message_id, device_id, event_name from staging.stg_events "
        f"where tenant_id = '{GOLD}' order by message_id, device_id"
    ) == [("k0", "d0", "Home"), ("k1", "d1", "Home"), ("k2", "d2", "Home")]
    # the collision was real: k2 was stored under the key k0's row holds
    assert workspace.warehouse_sql(
        "select message_id from staging.stg_events "
        f"where tenant_id = '{GOLD}' and message_key = {k2_key} order by message_id"
    ) == [("k0",), ("k2",)]
