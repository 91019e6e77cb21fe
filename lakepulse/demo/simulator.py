"""Seeded storefront traffic in Segment format, for demos, tests and benchmarks.

Visitors arrive through a channel (direct, search, social, email, paid, referral), browse, add
to cart, check out and buy with realistic drop-off, identify at checkout, and see experiments
whose variations have a configurable true effect on conversion. The same seed yields the same
events, so a test can assert exact counts.
"""

from __future__ import annotations

import base64
import math
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

CHANNELS: dict[str, dict[str, Any]] = {
    "direct": {"weight": 30, "referrer": None, "utm": None},
    "search": {"weight": 25, "referrer": "https://www.google.com/", "utm": None},
    "social": {"weight": 15, "referrer": "https://www.instagram.com/", "utm": None},
    "email": {"weight": 10, "referrer": None, "utm": ("newsletter", "email")},
    "paid": {"weight": 12, "referrer": "https://www.google.com/", "utm": ("google", "cpc")},
    "referral": {"weight": 8, "referrer": "https://blog.example.org/gift-guide", "utm": None},
}
DEVICES = {
    "desktop": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1",
    "tablet": "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1",
}
LATE_VISITS = 200
PRODUCTS = [(f"sku-{i:03d}", round(9.0 + i * 3.5, 2)) for i in range(40)]


@dataclass
class Experiment:
    experiment_id: str
    variations: dict[str, float]
    """variation id -> multiplier on purchase probability (1.0 = no effect)."""


@dataclass
class Faults:
    """Faults on demand, each a share of events (0 = off), for tests and demos of robustness."""

    duplicate_rate: float = 0.0
    """Events sent again later with the same messageId (an SDK retry after a lost response)."""
    late_rate: float = 0.0
    late_seconds: float = 600.0
    """Events held back and sent this much later (offline devices)."""
    out_of_order: bool = False
    """Shuffle the events inside each request."""
    skew_rate: float = 0.0
    skew_seconds: float = 3600.0
    """Visitors whose device clock is off by this much (timestamps and sentAt alike)."""
    malformed_rate: float = 0.0
    """Events broken on purpose (missing event name, revenue as text): they must be rejected."""
    conversion_drop_after: int | None = None
    conversion_drop_at: datetime | None = None
    conversion_drop_factor: float = 0.2
    """After this many visits, or for checkouts from this (simulated) time on, purchase
    probability is multiplied by the factor: a broken checkout deploy."""


@dataclass
class SimConfig:
    seed: int = 42
    tenants: dict[str, str] = field(default_factory=dict)
    """tenant name -> write key."""
    purchase_rate: float = 0.35
    """Probability that a visitor who starts checkout completes the order."""
    returning_share: float = 0.3
    bounce_share: float = 0.0
    """Visits that are one page view and gone (they may come back: returning_share)."""
    browse_share: float = 0.0
    """Visits that browse many products for minutes and add nothing to the cart."""
    visits_per_second: float = 1.0
    """Pace of simulated time when the generator runs on a fixed start clock."""
    known_propensity: bool = False
    """Visits whose order is drawn with a probability known from what the visit shows (product
    views, products added and their value, a previous visit, channel, device; see
    :func:`buying_probability`), recorded per visit in ``TrafficGenerator.truth``: the limit
    the purchase-propensity model is benchmarked against. Off by default, so seeded traffic
    stays as it was."""
    experiments: list[Experiment] = field(
        default_factory=lambda: [Experiment("checkout_button", {"control": 1.0, "green": 1.15})]
    )
    faults: Faults = field(default_factory=Faults)


class TrafficGenerator:
    """Yields ``(tenant, write_key, message)`` in visit order; deterministic for a seed."""

    def __init__(self, config: SimConfig, clock: datetime | None = None):
        if not config.tenants:
            raise ValueError("the simulator needs at least one tenant write key")
        self.config = config
        self.rng = random.Random(config.seed)
        self.clock = clock
        self.visitors: dict[str, list[str]] = {t: [] for t in config.tenants}
        self.users: dict[str, str] = {}
        self.visit_count = 0
        self.skews: dict[str, float] = {}
        self.truth: dict[str, float] = {}
        """With ``known_propensity``: the messageId of each visit's first event -> the
        probability its order was drawn with."""
        self.seen: set[str] = set()

    def _now(self) -> datetime:
        """Real time, or for a fixed start clock simulated time advancing ``visits_per_second``."""
        if self.clock is None:
            return datetime.now(UTC)
        return self.clock + timedelta(seconds=self.visit_count / self.config.visits_per_second)

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def visits(self) -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
        """Each item is one visit's events, in order."""
        tenants = sorted(self.config.tenants)
        while True:
            tenant = self.rng.choice(tenants)
            yield self._visit(tenant, self.config.tenants[tenant])

    def events(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """All events in send order, with the configured faults applied."""
        faults, rng = self.config.faults, self.rng
        held: list[tuple[float, int, tuple[str, str, dict[str, Any]]]] = []
        for visit in self.visits():
            now = self._now().timestamp()
            # Released after late_seconds of real time, or 200 visits (fast or fixed-clock runs).
            while held and (held[0][0] <= now or held[0][1] + LATE_VISITS <= self.visit_count):
                yield held.pop(0)[2]
            for item in visit:
                tenant, key, message = item
                if faults.malformed_rate and rng.random() < faults.malformed_rate:
                    message = self._break(message)
                    item = (tenant, key, message)
                if faults.late_rate and rng.random() < faults.late_rate:
                    held.append((now + faults.late_seconds, self.visit_count, item))
                    continue
                yield item
                if faults.duplicate_rate and rng.random() < faults.duplicate_rate:
                    yield (tenant, key, dict(message))

    def _break(self, message: dict[str, Any]) -> dict[str, Any]:
        broken = dict(message)
        if broken.get("type") == "track" and self.rng.random() < 0.5:
            broken.pop("event", None)
        else:
            broken["properties"] = {**broken.get("properties", {}), "revenue": "twelve"}
        return broken

    def _visit(self, tenant: str, key: str) -> list[tuple[str, str, dict[str, Any]]]:
        rng = self.rng
        faults = self.config.faults
        self.visit_count += 1
        purchase_rate = self.config.purchase_rate
        if (
            faults.conversion_drop_after is not None
            and self.visit_count > faults.conversion_drop_after
        ):
            purchase_rate *= faults.conversion_drop_factor
        known = self.visitors[tenant]
        if known and rng.random() < self.config.returning_share:
            anonymous_id = rng.choice(known)
        else:
            anonymous_id = self._id()
            known.append(anonymous_id)
            if len(known) > 5000:
                known.pop(0)
        user_id = self.users.get(anonymous_id)
        channel = rng.choices(list(CHANNELS), weights=[c["weight"] for c in CHANNELS.values()])[0]
        device = rng.choices(list(DEVICES), weights=[50, 42, 8])[0]
        spec = CHANNELS[channel]
        context: dict[str, Any] = {
            "userAgent": DEVICES[device],
            "locale": rng.choice(["en-US", "en-GB", "de-DE", "fr-FR"]),
            "library": {"name": "lakepulse-simulator", "version": "1"},
            "ip": f"203.0.113.{rng.randrange(1, 255)}",
        }
        query = ""
        if spec["utm"]:
            source, medium = spec["utm"]
            campaign = rng.choice(["spring_launch", "weekly_deals"])
            context["campaign"] = {"source": source, "medium": medium, "name": campaign}
            query = f"?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}"
        start = self._now()
        clock = [start]
        out: list[tuple[str, str, dict[str, Any]]] = []

        def emit(kind: str, **fields: Any) -> None:
            clock[0] += timedelta(seconds=rng.uniform(2, 40))
            page = {"path": fields.pop("path", "/"), "referrer": spec["referrer"] or ""}
            page["url"] = f"https://shop.{tenant}.example{page['path']}{query}"
            message = {
                "type": kind,
                "messageId": self._id(),
                "anonymousId": anonymous_id,
                "timestamp": clock[0],
                "context": {**context, "page": page},
                **fields,
            }
            if user_id:
                message["userId"] = user_id
            out.append((tenant, key, message))

        product, price = rng.choice(PRODUCTS)
        emit("page", name="Home", properties={"path": "/"}, path="/")
        if self.config.known_propensity:
            return self._known_propensity_visit(
                emit, out, clock, start, anonymous_id, channel, device
            )
        # Shoppers the triggers react to (off unless configured, so seeded traffic is stable).
        persona = rng.random() if self.config.bounce_share or self.config.browse_share else 1.0
        if persona < self.config.bounce_share:
            return self._end_visit(out, clock, start, anonymous_id)
        if persona < self.config.bounce_share + self.config.browse_share:
            for _ in range(rng.randint(6, 12)):
                browsed, browsed_price = rng.choice(PRODUCTS)
                emit(
                    "track",
                    event="Product Viewed",
                    properties={"product_id": browsed, "price": browsed_price},
                    path=f"/p/{browsed}",
                )
            return self._end_visit(out, clock, start, anonymous_id)
        exposure = None
        if self.config.experiments and rng.random() < 0.6:
            experiment = rng.choice(self.config.experiments)
            variation = sorted(experiment.variations)[
                int(uuid.UUID(anonymous_id).int % len(experiment.variations))
            ]
            exposure = experiment.variations[variation]
            emit(
                "track",
                event="Experiment Viewed",
                properties={"experiment_id": experiment.experiment_id, "variation_id": variation},
            )
        emit(
            "track",
            event="Product Viewed",
            properties={"product_id": product, "price": price},
            path=f"/p/{product}",
        )
        if rng.random() < 0.45:
            quantity = rng.randint(1, 3)
            emit(
                "track",
                event="Product Added",
                properties={"product_id": product, "price": price, "quantity": quantity},
                path=f"/p/{product}",
            )
            emit(
                "track",
                event="Cart Viewed",
                properties={"products": [{"product_id": product, "quantity": quantity}]},
                path="/cart",
            )
            if rng.random() < 0.6:
                emit(
                    "track",
                    event="Checkout Started",
                    properties={"value": price * quantity},
                    path="/checkout",
                )
                if user_id is None:
                    user_id = "u_" + self._id()[:12]
                    self.users[anonymous_id] = user_id
                    emit(
                        "identify",
                        traits={"email": f"{user_id}@example.com", "plan": "guest"},
                        path="/checkout",
                    )
                # Events are re-timed below so the visit ends at `start`: its order happens then.
                if faults.conversion_drop_at is not None and start >= faults.conversion_drop_at:
                    purchase_rate = self.config.purchase_rate * faults.conversion_drop_factor
                if rng.random() < purchase_rate * (exposure or 1.0):
                    emit(
                        "track",
                        event="Order Completed",
                        properties={
                            "order_id": "o_" + self._id()[:16],
                            "revenue": round(price * quantity, 2),
                            "currency": "USD",
                            "products": [
                                {"product_id": product, "price": price, "quantity": quantity}
                            ],
                        },
                        path="/checkout/thanks",
                    )
        return self._end_visit(out, clock, start, anonymous_id)

    def _known_propensity_visit(
        self, emit, out: list, clock: list, start: datetime, anonymous_id: str, channel, device
    ) -> list:
        """Views, adds, then an order with the probability :func:`buying_probability` gives
        for what the visit showed (recorded in :attr:`truth`)."""
        rng = self.rng
        returning = anonymous_id in self.seen
        self.seen.add(anonymous_id)
        views = rng.randint(1, 6)
        cart_value = 0.0
        adds = 0
        for _ in range(views):
            product, price = rng.choice(PRODUCTS)
            emit(
                "track",
                event="Product Viewed",
                properties={"product_id": product, "price": price},
                path=f"/p/{product}",
            )
            if rng.random() < 0.2:
                quantity = rng.randint(1, 2)
                adds += 1
                cart_value += price * quantity
                emit(
                    "track",
                    event="Product Added",
                    properties={"product_id": product, "price": price, "quantity": quantity},
                    path=f"/p/{product}",
                )
        probability = buying_probability(views, adds, cart_value, returning, channel, device)
        self.truth[out[0][2]["messageId"]] = probability
        if rng.random() < probability:
            user_id = self.users.get(anonymous_id)
            if user_id is None:
                user_id = "u_" + self._id()[:12]
                self.users[anonymous_id] = user_id
                emit("identify", traits={"plan": "guest"}, path="/checkout")
                out[-1][2]["userId"] = user_id
            emit(
                "track",
                event="Order Completed",
                properties={
                    "order_id": "o_" + self._id()[:16],
                    "revenue": round(cart_value or PRODUCTS[0][1], 2),
                    "currency": "USD",
                },
                path="/checkout/thanks",
            )
            out[-1][2]["userId"] = user_id
        return self._end_visit(out, clock, start, anonymous_id)

    def _end_visit(self, out: list, clock: list, start: datetime, anonymous_id: str) -> list:
        """The visit ends now: events carry past timestamps, as a real SDK's buffered ones
        would. A skewed device clock shifts timestamp and sentAt alike; the collector
        corrects it."""
        rng, faults = self.rng, self.config.faults
        if anonymous_id not in self.skews:
            skewed = faults.skew_rate and rng.random() < faults.skew_rate
            self.skews[anonymous_id] = rng.choice([-1, 1]) * faults.skew_seconds if skewed else 0.0
        skew = timedelta(seconds=self.skews[anonymous_id])
        shift = clock[0] - start
        for _, _, message in out:
            message["timestamp"] = (message["timestamp"] - shift + skew).isoformat()
            if skew:
                message["_clock_skew_s"] = skew.total_seconds()
        return out


CHANNEL_LIFT = {"direct": 0.0, "search": 0.2, "social": -0.5, "email": 0.6, "paid": 0.3}
DEVICE_LIFT = {"desktop": 0.0, "mobile": -0.3, "tablet": -0.1}


def buying_probability(
    views: int, adds: int, cart_value: float, returning: bool, channel: str, device: str
) -> float:
    """The simulator's true probability that a ``known_propensity`` visit orders: logistic in
    what the visit shows, with a nonlinearity (square root of views, log of the cart's value)
    and an interaction (the cart's value counts only with something in it)."""
    logit = (
        -3.2
        + 1.6 * (adds > 0)
        + 0.6 * math.log1p(cart_value / 50.0)
        + 0.3 * math.sqrt(views)
        + 0.6 * returning
        + CHANNEL_LIFT.get(channel, 0.0)
        + DEVICE_LIFT.get(device, 0.0)
    )
    return 1.0 / (1.0 + math.exp(-logit))


def _auth(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


class Sender:
    """Posts batches to a collector; retries a batch unchanged (same messageIds) on failure."""

    def __init__(self, base_url: str, timeout: float = 10.0, retries: int = 5):
        self.client = httpx.Client(base_url=base_url, timeout=timeout)
        self.retries = retries

    def send(self, write_key: str, messages: list[dict[str, Any]]) -> httpx.Response:
        now = datetime.now(UTC)
        batch = []
        for message in messages:
            skew = message.get("_clock_skew_s")
            if skew is not None:
                message = {k: v for k, v in message.items() if k != "_clock_skew_s"}
                message["sentAt"] = (now + timedelta(seconds=skew)).isoformat()
            batch.append(message)
        body = {"batch": batch, "sentAt": now.isoformat()}
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                response = self.client.post(
                    "/v1/batch", json=body, headers={"Authorization": _auth(write_key)}
                )
                if response.status_code < 500:
                    return response
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        return response

    def close(self) -> None:
        self.client.close()


def run(
    generator: TrafficGenerator,
    sender: Sender,
    *,
    rate: float,
    total: int | None = None,
    duration: float | None = None,
    batch_size: int = 50,
    on_progress: Any = None,
) -> int:
    """Send events at about ``rate`` per second until ``total`` events or ``duration`` seconds.

    Returns the number of events the collector accepted.
    """
    started = time.monotonic()
    sent = accepted = 0
    pending: dict[str, list[dict[str, Any]]] = {}
    keys: dict[str, str] = {}

    def flush(tenant: str) -> None:
        nonlocal accepted
        batch = pending.pop(tenant, [])
        if shuffle:
            generator.rng.shuffle(batch)
        if batch:
            response = sender.send(keys[tenant], batch)
            if response.status_code == 200:
                accepted += len(batch) - len(response.json().get("rejected", []))

    shuffle = generator.config.faults.out_of_order
    for tenant, key, message in generator.events():
        if total is not None and sent >= total:
            break
        if duration is not None and time.monotonic() - started >= duration:
            break
        keys[tenant] = key
        pending.setdefault(tenant, []).append(message)
        sent += 1
        if len(pending[tenant]) >= batch_size:
            flush(tenant)
            if on_progress:
                on_progress(sent, accepted)
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    for tenant in list(pending):
        flush(tenant)
    if on_progress:
        on_progress(sent, accepted)
    return accepted
