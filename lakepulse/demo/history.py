"""A past for the demo's tenants, so ``lakepulse predict`` has something to learn from.

A fresh ``make demo`` has minutes of traffic: one day of history and no ended campaign, too
little for any prediction model (docs/predictions.md, "Too little history"). On its first
start, on an empty data directory, the demo lands a history for each of its tenants, ending
at the wall clock's "now" so the live simulator continues it:

- **customers** (lifetime, churn): two years of returning customers drawn from a BG/NBD
  process with known parameters (:data:`TRUTH`, :data:`SPEND`), one ``Order Completed`` per
  purchase (some split in two orders on one day, some sent twice), from
  :func:`simulate_customers` and :func:`customer_messages`;
- **visits** (purchase propensity): :data:`HistorySizes.visit_days` days of the traffic
  simulator's visits in its ``known_propensity`` mode, each order drawn with a probability the
  simulator records (:func:`simulate_visits`): the held-out last day's best possible AUC;
- **campaigns** (forecasts): ended campaigns whose day-7 revenue follows a known law of their
  first 4 hours (:func:`simulate_campaigns`), and running ones.

It goes through the real pipeline: each tenant's events as one landing-log file (what the
collector writes), then the loader, ``dbt build`` of what the models read, and
``lakepulse predict``'s fits (:func:`ensure_history`). Nothing writes a mart.

The generators are written from the papers and the simulator's own law, independently of
``lakepulse.analytics``: the integration tests use them to check the models against known
truth, the benchmarks to measure them.

**Once, and crash-safe.** ``$LAKEPULSE_HOME/demo/history.json`` holds the plan (the "now" it
ends at, the seed, the tenants, the sizes) before anything lands, and its stage after each
step. Every event is a pure function of the plan (seeded message ids and timestamps), so a
start after a kill lands the same events again, which the pipeline drops as copies (the
messageId is the idempotency key), and goes on from the stage it reached; a finished history
is never landed again.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from ingestion.contract import normalize
from ingestion.landing import LandingLog
from ingestion.tenants import TenantRegistry
from lakepulse.core.settings import Settings
from lakepulse.demo.simulator import Faults, SimConfig, TrafficGenerator

TRUTH = {"r": 2.0, "alpha": 50.0, "a": 0.8, "b": 3.0}
"""The BG/NBD parameters customers are drawn with (time in days)."""
SPEND = {"p": 6.0, "q": 4.0, "gamma": 15.0}
"""The Gamma-Gamma parameters of their spend per purchase occasion."""

HISTORY_ENV = "LAKEPULSE_DEMO_HISTORY"
"""``0`` (or ``off``, ``no``, ``false``): the demo starts without a history."""

BUILD_SELECT = (
    "--select",
    "+int_customer_orders",
    "+int_session_clocks",
    "+int_session_features",
    "+mart_campaign_forecast",
)
"""What the fits read (the clock with the session tier's copy of it, which the predictions read),
and the campaign forecasts; the pipeline worker builds the rest."""


# --- customers: BG/NBD + Gamma-Gamma ------------------------------------------------------


def simulate_customers(
    n: int,
    seed: int,
    truth: dict = TRUTH,
    *,
    days: float = 730.0,
    join_days: float = 365.0,
    spend: dict = SPEND,
) -> list[dict]:
    """BG/NBD (Fader, Hardie & Lee 2005, section 2): lambda ~ Gamma(r, rate alpha), p ~ Beta(a, b);
    purchases at Poisson rate lambda from the first one (time 0, the customer's start, uniform
    over the first ``join_days``); after each repeat purchase she drops out for good with
    probability p. Spend per occasion ~ Gamma(p, rate nu), nu ~ Gamma(q, rate gamma). Times in
    days from the start of observation, continuous, before ``days``."""
    rng = np.random.default_rng(seed)
    customers = []
    for index in range(n):
        rate = rng.gamma(truth["r"], 1.0 / truth["alpha"])
        dropout = rng.beta(truth["a"], truth["b"])
        nu = rng.gamma(spend["q"], 1.0 / spend["gamma"])
        start = rng.uniform(0.0, join_days)
        times = [start]
        while True:
            t = times[-1] + rng.exponential(1.0 / rate)
            if t >= days:
                break
            times.append(t)
            if rng.random() < dropout:
                break
        spends = rng.gamma(spend["p"], 1.0 / nu, size=len(times))
        customers.append({"user": f"u{index:05d}", "times": times, "spends": spends})
    return customers


def order_message(user: str, at: datetime, order_id: str, revenue: float, message_id: str) -> dict:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "messageId": message_id,
        "timestamp": at.isoformat(),
        "properties": {
            "order_id": order_id,
            "revenue": round(float(revenue), 2),
            "currency": "USD",
        },
    }


def customer_messages(
    customers: list[dict], seed: int, start: datetime, days: int
) -> tuple[list[dict], dict]:
    """Each purchase of :func:`simulate_customers`, observed from ``start`` (a UTC midnight)
    for ``days`` days, as an ``Order Completed``; a quarter of them split into two orders
    earlier the same UTC day (revenue split), 5 % of orders sent twice 10 minutes apart (one
    order). Returns the messages and, counted here from the generator, what each customer's
    summary must be: (x, t_x, T, monetary value), days in whole UTC days. Sets each customer's
    ``days`` (her purchase occasions)."""
    rng = np.random.default_rng(seed + 1)
    ids = random.Random(f"orders-{seed}")  # not the simulator's stream: ids never collide
    messages: list[dict] = []
    expected = {}

    def message_id() -> str:
        return str(uuid.UUID(int=ids.getrandbits(128), version=4))

    for customer in customers:
        occasion_days = []
        revenue: dict[int, float] = {}
        for number, (t, spend) in enumerate(
            zip(customer["times"], customer["spends"], strict=True)
        ):
            at = start + timedelta(days=t)
            day_start = at.replace(hour=0, minute=0, second=0, microsecond=0)
            day = (day_start - start).days
            occasion_days.append(day)
            order_id = f"{customer['user']}-{number}"
            if rng.random() < 0.25:  # two orders on one day: one occasion
                share = rng.uniform(0.2, 0.8)
                earlier = day_start + (at - day_start) / 2
                first = order_message(
                    customer["user"], earlier, order_id + "a", spend * share, message_id()
                )
                messages.append(first)
                revenue[day] = revenue.get(day, 0.0) + first["properties"]["revenue"]
                spend *= 1 - share
            message = order_message(customer["user"], at, order_id, spend, message_id())
            messages.append(message)
            revenue[day] = revenue.get(day, 0.0) + message["properties"]["revenue"]
            if rng.random() < 0.05:  # the same order completed twice: one order
                again = at + timedelta(minutes=10)
                messages.append(
                    order_message(customer["user"], again, order_id, spend, message_id())
                )
        occasions = sorted(set(occasion_days))
        customer["days"] = occasions
        repeats = [revenue[d] for d in occasions[1:]]
        expected[customer["user"]] = (
            len(occasions) - 1,
            occasions[-1] - occasions[0],
            (days - 1) - occasions[0],
            sum(repeats) / len(repeats) if repeats else 0.0,
        )
    return messages, expected


def clock_message(at: datetime, message_id: str = "clock") -> dict:
    """A page view at ``at``: the tenant's clock (its latest event) for a test's history."""
    return {
        "type": "page",
        "anonymousId": "clock",
        "messageId": message_id,
        "timestamp": at.isoformat(),
        "properties": {"path": "/"},
    }


# --- visits: the simulator's known buying probabilities ------------------------------------


def simulate_visits(
    tenant: str, start: datetime, end: datetime, visits_per_day: float, seed: int
) -> tuple[list[dict], dict[str, float]]:
    """The traffic simulator in its ``known_propensity`` mode from ``start`` until ``end``:
    its messages, and its truth (each visit's first messageId -> the probability its order was
    drawn with, :func:`lakepulse.demo.simulator.buying_probability`)."""
    config = SimConfig(
        seed=seed,
        tenants={tenant: "history"},
        faults=Faults(),
        visits_per_second=visits_per_day / 86400,
        known_propensity=True,
        experiments=[],
    )
    generator = TrafficGenerator(config, clock=start)
    messages = []
    for _, _, message in generator.events():
        if generator._now() >= end:
            break
        messages.append(message)
    return messages, generator.truth


def holdout_limit(
    settings: Settings, truth: dict[str, dict[str, float]], default: float | None = None
) -> dict[str, tuple[float, int]]:
    """Per tenant of ``truth``: the AUC of the simulator's true probabilities on the holdout
    the propensity model is measured on (the same sessions and labels, from the warehouse),
    the best any model can do, and the number of sessions it is measured on. A held-out
    session the simulator did not make (a customer's order, a campaign's) counts with
    ``default``, or is left out with None."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from lakepulse.analytics import propensity
    from lakepulse.core.duck import connect

    conn = connect(settings.warehouse_path, read_only=True, delta=False)
    try:
        sessions = conn.sql(
            "select f.*, e.message_id from intermediate.int_session_features f "
            "join (select tenant_id, session_id, arg_min(message_id, event_at) as message_id "
            "from intermediate.int_sessionized_events group by all) e "
            "using (tenant_id, session_id)"
        ).df()
        orders = conn.sql(
            "select tenant_id, user_key, ordered_at from intermediate.int_customer_orders"
        ).df()
        clocks = dict(
            conn.execute(
                "select tenant_id, judged_at from intermediate.int_tenant_clocks"
            ).fetchall()
        )
    finally:
        conn.close()
    limits = {}
    for tenant, known in truth.items():
        mine = sessions[sessions["tenant_id"] == tenant].reset_index(drop=True)
        mine[propensity.LABEL] = propensity.label_sessions(
            mine, orders[orders["tenant_id"] == tenant]
        )
        _, holdout = propensity.time_split(propensity.labelled(mine, pd.Timestamp(clocks[tenant])))
        scores = holdout["message_id"].map(known)
        if default is None:
            holdout, scores = holdout[scores.notna()], scores.dropna()
        else:
            scores = scores.fillna(default)
        limits[tenant] = (float(roc_auc_score(holdout[propensity.LABEL], scores)), len(holdout))
    return limits


# --- campaigns: day-7 revenue a known law of the first 4 hours ------------------------------


def campaign_session(mid: str, when: datetime, campaign: str, revenue: float | None) -> list[dict]:
    """A session of the campaign: a page view carrying it and, with ``revenue``, an order a
    minute later (anonymous device ``dev-<mid>``; messageIds ``<mid>-p`` and ``<mid>-o``)."""
    context = {"campaign": {"source": "newsletter", "medium": "email", "name": campaign}}
    base = {"anonymousId": f"dev-{mid}", "context": context}
    messages = [
        base
        | {
            "type": "page",
            "name": "Home",
            "messageId": f"{mid}-p",
            "timestamp": when.isoformat(),
            "properties": {"path": "/"},
        }
    ]
    if revenue is not None:
        messages.append(
            base
            | {
                "type": "track",
                "event": "Order Completed",
                "messageId": f"{mid}-o",
                "timestamp": (when + timedelta(minutes=1)).isoformat(),
                "properties": {"order_id": f"o-{mid}", "revenue": round(revenue, 2)},
            }
        )
    return messages


def simulate_campaigns(
    launches: list[datetime], noise: float, seed: int, elasticity: float = 1.0, prefix: str = "c"
) -> tuple[list[dict], list[dict]]:
    """One campaign per launch: its 4-hour revenue r4 log-normal, its day-7 revenue
    e^2 * r4 * (r4 / e^5)^(elasticity - 1) times log-normal noise (e^5: the 4-hour revenue's
    median, so the typical campaign grows e^2 whatever the elasticity); the rest arrives 3 days
    after launch. Returns the messages and what was sent (name, launched, r4, r7)."""
    rng = np.random.default_rng(seed)
    sent, messages = [], []
    for k, launched in enumerate(launches):
        r4 = float(np.round(rng.lognormal(5.0, 0.8), 2))
        growth = np.exp(2.0 + rng.normal(0, noise)) * (r4 / np.exp(5.0)) ** (elasticity - 1)
        r7 = float(np.round(r4 * growth, 2))
        name = f"{prefix}{k:03d}"
        messages += campaign_session(f"{name}-a", launched, name, r4)
        messages += campaign_session(f"{name}-b", launched + timedelta(days=3), name, r7 - r4)
        sent.append({"campaign": name, "launched": launched, "r4": r4, "r7": r7})
    return messages, sent


def running_campaigns(now: datetime, hours: Iterable[float], seed: int) -> list[dict]:
    """Campaigns launched ``hours`` before ``now``: a 4-hour order from the same law, and for
    those past 5 hours a second order half an hour after their first 4 hours."""
    rng = np.random.default_rng(seed)
    messages = []
    for k, age in enumerate(hours):
        name = f"live{k:02d}"
        launched = now - timedelta(hours=age)
        r4 = float(np.round(rng.lognormal(5.0, 0.8), 2))
        messages += campaign_session(f"{name}-a", launched, name, r4)
        if age > 5:
            later = launched + timedelta(hours=4, minutes=30)
            messages += campaign_session(f"{name}-b", later, name, r4 * 0.8)
    return messages


# --- landing -------------------------------------------------------------------------------


def landing_rows(
    tenant: str, messages: list[dict], secret: bytes = b"s", delay: timedelta = timedelta(0)
) -> list[dict]:
    """``messages`` as the collector lands them, received ``delay`` after their timestamps."""
    return [
        normalize(
            m,
            tenant_id=tenant,
            secret=secret,
            received_at=datetime.fromisoformat(m["timestamp"]) + delay,
        )
        for m in messages
    ]


def land(
    settings: Settings,
    tenant: str,
    messages: list[dict],
    secret: bytes = b"s",
    delay: timedelta = timedelta(0),
) -> None:
    """Write ``messages`` to the landing log as one durable file, as the collector would."""
    LandingLog(settings.landing_dir).write(
        tenant, "events", landing_rows(tenant, messages, secret, delay)
    )


# --- the demo's history -------------------------------------------------------------------


@dataclass(frozen=True)
class HistorySizes:
    customers: int = 1500
    customer_days: int = 730
    visit_days: int = 10
    visits_per_day: int = 1200
    ended_campaigns: int = 20
    campaign_every_days: float = 3.0
    running_campaign_hours: tuple[float, ...] = (30.0, 10.0, 2.0)


@dataclass
class History:
    """What a tenant's history holds (the plan is enough to land it again, identically)."""

    now: datetime
    seed: int
    tenants: list[str]
    sizes: HistorySizes = field(default_factory=HistorySizes)
    stage: str = "planned"
    """``planned`` -> ``landed`` -> ``done``: the last step finished."""
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["now"] = self.now.isoformat()
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> History:
        data = json.loads(text)
        data["now"] = datetime.fromisoformat(data["now"])
        sizes = data.pop("sizes")
        sizes["running_campaign_hours"] = tuple(sizes["running_campaign_hours"])
        return cls(sizes=HistorySizes(**sizes), **data)


def tenant_messages(history: History, tenant: str) -> tuple[list[dict], dict[str, float]]:
    """Every event of ``tenant``'s history, and the simulator's truth of its visits."""
    sizes, now = history.sizes, history.now
    seed = history.seed + 1000 * history.tenants.index(tenant)
    # Customers: observed whole UTC days, the last one today, their purchases before now.
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=sizes.customer_days - 1)
    horizon = (now - start) / timedelta(days=1)
    customers = simulate_customers(
        sizes.customers, seed, days=horizon, join_days=sizes.customer_days / 2
    )
    messages, _ = customer_messages(customers, seed, start, sizes.customer_days)
    visits, truth = simulate_visits(
        tenant, now - timedelta(days=sizes.visit_days), now, sizes.visits_per_day, seed
    )
    messages += visits
    # Ended campaigns: the last one's day 7 over an hour ago.
    last = now - timedelta(days=7, hours=1)
    launches = [
        last - timedelta(days=sizes.campaign_every_days * k)
        for k in reversed(range(sizes.ended_campaigns))
    ]
    campaigns, _ = simulate_campaigns(launches, noise=0.3, seed=seed, prefix="spring")
    messages += campaigns
    messages += running_campaigns(now, sizes.running_campaign_hours, seed)
    return messages, truth


def history_path(settings: Settings):
    return settings.home / "demo" / "history.json"


def _save(settings: Settings, history: History) -> None:
    """Atomically: a reader (or the next start) sees the old state or the new one."""
    path = history_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as out:
        out.write(history.to_json())
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_history(settings: Settings) -> History | None:
    path = history_path(settings)
    return History.from_json(path.read_text()) if path.exists() else None


def holds_events(settings: Settings) -> bool:
    """Whether the data directory already holds events (landed or loaded)."""
    if settings.bronze_events_path.exists():
        return True
    return next(iter(LandingLog(settings.landing_dir).files("events")), None) is not None


def history_wanted(env: dict[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(HISTORY_ENV, "1")
    return value.strip().lower() not in {"0", "off", "no", "false"}


@dataclass(frozen=True)
class HistoryReport:
    landed: bool
    """Whether this call landed (or finished) a history; False: already there, or skipped."""
    history: History | None
    reason: str = ""
    truth: dict[str, dict[str, float]] = field(default_factory=dict)
    """With ``landed``: per tenant, its visits' true buying probabilities."""
    lifetime: list = field(default_factory=list)
    """With ``landed``: the lifetime fits (``lakepulse.operations.predict.TenantResult``)."""
    propensity: list = field(default_factory=list)
    """With ``landed``: the propensity fits (``PropensityResult``)."""


def ensure_history(
    settings: Settings,
    tenants: list[str],
    echo: Callable[[str], None] = lambda _: None,
    sizes: HistorySizes | None = None,
    now: datetime | None = None,
    seed: int = 2027,
    require_empty: bool = True,
) -> HistoryReport:
    """Land the demo's history for ``tenants`` unless it is there, through the pipeline:
    landing log (one file per tenant), load, ``dbt build`` of :data:`BUILD_SELECT`, and the
    prediction fits. Resumes a history a kill interrupted; skips a data directory that already
    holds events of its own (unless not ``require_empty``)."""
    history = load_history(settings)
    if history is not None and history.stage == "done":
        return HistoryReport(
            False, history, f"already landed (ending {history.now:%Y-%m-%d %H:%M} UTC)"
        )
    if history is None:
        if require_empty and holds_events(settings):
            return HistoryReport(False, None, "this data directory already holds events")
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        history = History(now=now, seed=seed, tenants=list(tenants), sizes=sizes or HistorySizes())
        _save(settings, history)
    # Imported only to land one: `lakepulse demo` supervises its services for hours, and these
    # (dlt, dbt, the model fits) would double its memory for nothing on every later start.
    from ingestion.pipeline import run_ingest
    from lakepulse.operations.predict import fit_predictions, fit_propensity
    from lakepulse.operations.rebuild import run_build

    truth: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    if history.stage == "planned":
        secrets = TenantRegistry(settings.tenants_file)
        for tenant in history.tenants:
            messages, truth[tenant] = tenant_messages(history, tenant)
            known = secrets.get(tenant)
            land(settings, tenant, messages, known.secret if known else b"s", timedelta(seconds=1))
            echo(f"  {tenant}: {len(messages)} past events landed")
        history.stage = "landed"
        history.seconds["land"] = round(time.perf_counter() - started, 1)
        _save(settings, history)
    started = time.perf_counter()
    run_ingest(settings)
    history.seconds["load"] = round(time.perf_counter() - started, 1)
    echo(
        f"  loaded into bronze in {history.seconds['load']:.0f} s; building what the models read ..."
    )
    started = time.perf_counter()
    run_build(settings, *BUILD_SELECT, capture=True)
    history.seconds["build"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    echo(f"  built in {history.seconds['build']:.0f} s; fitting the prediction models ...")
    lifetime = fit_predictions(settings, history.tenants)
    propensity = fit_propensity(settings, history.tenants)
    history.seconds["fit"] = round(time.perf_counter() - started, 1)
    history.stage = "done"
    _save(settings, history)
    return HistoryReport(True, history, "", truth, lifetime, propensity)
