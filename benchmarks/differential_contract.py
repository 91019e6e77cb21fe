"""Differential check for collector optimisations: the bronze and quarantine rows this tree's
contract produces, compared with those of another git revision (default ``main``) on the same
corpus. Any optimisation of the hot path must leave this at zero differences. Three of this tree's paths
are compared: ``normalize`` (the interpreted contract), the collector's compiled pass
(``check_events`` on each message's bytes, which hands what it declines to ``normalize``), and
the collector's intake (``intake.read_request`` and ``accept``: a batch and its events decoded
in one pass when they fit, every other body padded past ``MAX_EVENT_BYTES``).

The corpus: seeded simulator traffic with every fault on (malformed events, skewed clocks,
duplicates), plus mutations of those messages that hit each rule: wrong types, bad and
future timestamps, missing ids, PII in traits and URLs, deep nesting, numbers as ids, pages
whose properties carry the URL, identify traits only in context, events that take the
batch's context and sentAt.

    python -m benchmarks.differential_contract            # against main, 30k messages
    python -m benchmarks.differential_contract --rev HEAD~3 --messages 60000
"""

from __future__ import annotations

import argparse
import copy
import random
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import orjson

from lakepulse.core.settings import PROJECT_ROOT
from lakepulse.demo.simulator import Faults, SimConfig, TrafficGenerator

RECEIVED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CORPUS_CLOCK = RECEIVED_AT - timedelta(hours=1)
SECRET = bytes(range(32))
BATCH_CONTEXTS = (
    None,
    {"library": {"name": "analytics-python"}, "ip": "1.2.3.4", "os": {"name": "x"}},
    {"page": {"url": "https://shop.example/?email=a@b.co"}, "userAgent": "Mozilla/5.0 (iPad)"},
    {},
)
"""A batch's own context and sentAt (Segment's server SDKs send both at batch level): an event
without a context of its own takes the batch's."""
BATCH_SENT_AT = (None, "2026-12-01T11:59:30Z", None, "2026-12-01T12:00:00+01:00", None, None, "bad")


def _mutate(message: dict, rng: random.Random) -> dict:
    """A copy of ``message`` with one rule-hitting change."""
    out = copy.deepcopy(message)
    choice = rng.randrange(17)
    props = out.setdefault("properties", {}) if isinstance(out.get("properties"), dict) else {}
    if choice == 0:
        out["userId"] = rng.choice([123, 4.5, True, [], "", "x" * 600, None])
    elif choice == 1:
        out["timestamp"] = rng.choice(["yesterday", 17, "2099-01-01T00:00:00Z", "2026-12-01"])
    elif choice == 2:
        out.pop("messageId", None)
    elif choice == 3:
        out["traits"] = {"email": "A.Person@Example.com ", "phone": "+1 (555) 010-9999", "plan": 1}
    elif choice == 4:
        out.setdefault("context", {})["page"] = {
            "url": "https://shop.example/p?email=a@b.co&utm_source=x&token=t",
            "referrer": rng.choice(["$direct", "https://u:p@ref.example/?q=1&name=n"]),
            "search": "?phone=1&x=2",
        }
    elif choice == 5:
        deep: dict = {}
        cursor = deep
        for _ in range(rng.choice([10, 40])):
            cursor["d"] = {}
            cursor = cursor["d"]
        out[rng.choice(["properties", "integrations", "traits", "context"])] = deep
    elif choice == 6:
        props["revenue"] = rng.choice(["12", -1, 3, None, 2.5])
        props["order_id"] = rng.choice([99, "o-1", {}])
    elif choice == 7:
        out["type"] = rng.choice(["page", "screen", "identify", "group", "alias", "bogus", 3])
        out["name"] = rng.choice(["Home", 5, None])
        props.update({"url": "https://shop.example/x?e=a@b.co", "title": "T"})
    elif choice == 8:
        out["type"] = "identify"
        out.pop("traits", None)
        out.setdefault("context", {})["traits"] = {"email": "x@y.zz", "name": "N"}
    elif choice == 9:
        out["sentAt"] = rng.choice(["2026-12-01T11:00:00Z", "bad", None, 5])
    elif choice == 10:
        out["context"] = rng.choice([[], "ctx", {"ip": "1.2.3.4", "userAgent": "curl/8", "x": 1}])
    elif choice == 11:
        props["products"] = rng.choice([[{"product_id": 7}], [], "p", [{"sku": 1}]])
        props.pop("product_id", None)
    elif choice == 12:
        out["groupId"] = rng.choice([None, "g", 5])
        out["previousId"] = rng.choice([None, "p"])
    elif choice == 13:
        out.pop("userId", None)
        out.pop("anonymousId", None)
    elif choice == 14:
        out["context"] = {**out.get("context", {}), "campaign": {"name": "c", "source": 1}}
    elif choice == 15:
        out.pop("context", None)  # takes the batch's context, if any
    else:
        props["nested"] = [{"email": "who@where.org"}, {"url": "http://a?token=1"}, "me@x.io"]
    return out


def corpus(messages: int, seed: int = 20) -> list[dict]:
    """Simulator messages (faults on) and, for every third, a mutated copy."""
    faults = Faults(duplicate_rate=0.02, skew_rate=0.1, malformed_rate=0.05, out_of_order=True)
    # A fixed clock an hour before RECEIVED_AT: the same corpus every run, and events the
    # contract accepts (real time would date them after RECEIVED_AT, most past the skew limit).
    gen = TrafficGenerator(
        SimConfig(seed=seed, tenants={"acme": "k"}, faults=faults), clock=CORPUS_CLOCK
    )
    rng = random.Random(seed)
    out: list[dict] = []
    for _, _, message in islice(gen.events(), messages):
        out.append(message)
        if rng.random() < 1 / 3:
            out.append(_mutate(message, rng))
    return out[:messages]


def rows(messages: list[dict]) -> list[bytes]:
    """One output line per message: its bronze row or its quarantine row with the reason."""
    from ingestion.contract import ContractError, normalize, rejection

    out = []
    for index, message in enumerate(messages):
        try:
            row = normalize(
                message,
                tenant_id="acme",
                secret=SECRET,
                received_at=RECEIVED_AT,
                batch_context=BATCH_CONTEXTS[index % len(BATCH_CONTEXTS)],
                batch_sent_at=BATCH_SENT_AT[index % len(BATCH_SENT_AT)],
                default_type="track" if index % 7 == 0 else None,
            )
        except ContractError as err:
            row = rejection(
                tenant_id="acme",
                secret=SECRET,
                received_at=RECEIVED_AT,
                payload=message,
                reason=str(err),
                index=index,
            )
        out.append(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))
    return out


def compiled_rows(messages: list[dict]) -> tuple[list[bytes], int]:
    """:func:`rows` the way the collector now makes them: each message sent as a one-event
    ``/v1/batch`` body with the same batch context and sentAt, decoded by ``decode_request``
    and checked by ``check_events`` (the compiled pass, which hands what it declines to
    ``normalize``), the route's type given as :func:`rows` gives it; and how many took the
    compiled pass."""

    from ingestion.contract import check_events, decode_request

    out, compiled = [], 0
    for index, message in enumerate(messages):
        body = _one_event_body(message, index)
        request = decode_request(body, batched=True)
        assert request is not None, f"message {index}: the envelope did not decode"
        checked = check_events(
            request.events,
            tenant_id="acme",
            secret=SECRET,
            received_at=RECEIVED_AT,
            batch_context=request.context,
            batch_sent_at=request.sent_at,
            default_type="track" if index % 7 == 0 else None,
            body_bytes=len(body),
            compiled=True,
        )
        compiled += checked.compiled
        out.append(_row_bytes(checked, message, index))
    return out, compiled


def _one_event_body(message: dict, index: int, padded: bool = False) -> bytes:
    """The one-event ``/v1/batch`` body of the corpus's message ``index``: its batch context and
    sentAt by its index, and (``padded``) larger than ``MAX_EVENT_BYTES``."""
    context = BATCH_CONTEXTS[index % len(BATCH_CONTEXTS)]
    sent_at = BATCH_SENT_AT[index % len(BATCH_SENT_AT)]
    return orjson.dumps(
        {
            "batch": [message],
            **({} if context is None else {"context": context}),
            **({} if sent_at is None else {"sentAt": sent_at}),
            **({"integrations": {"pad": PADDING}} if padded else {}),
        }
    )


def _row_bytes(checked, message: dict, index: int) -> bytes:
    """A one-event request's row, bronze or quarantine, as sorted JSON; a quarantine row made
    again with the message's index in the corpus (its rejection_id's part)."""
    import msgspec

    from ingestion.contract import rejection

    if checked.good:
        row = checked.good[0]
        row = row if isinstance(row, dict) else msgspec.structs.asdict(row)
    else:
        row = rejection(
            tenant_id="acme",
            secret=SECRET,
            received_at=RECEIVED_AT,
            payload=message,
            reason=checked.bad[0]["reason"],
            index=index,
        )
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


PADDING = "x" * 33_000
"""An envelope field the contract ignores (``integrations``) that makes a body larger than
``MAX_EVENT_BYTES``: its events then go through the size rule."""


def collector_rows(messages: list[dict]) -> tuple[list[bytes], int]:
    """:func:`rows` the way the collector's intake makes them (``intake.read_request`` and
    ``accept``: a batch decoded with its events in one pass when they all fit, else as
    :func:`compiled_rows` does), every other body padded past ``MAX_EVENT_BYTES``; and how
    many events were decoded in one pass."""
    from ingestion.intake import accept, read_request
    from ingestion.tenants import Tenant

    tenant = Tenant("acme", SECRET)
    out, decoded = [], 0
    for index, message in enumerate(messages):
        body = _one_event_body(message, index, padded=index % 2 == 1)
        submission = read_request(body, True, "track" if index % 7 == 0 else None)
        decoded += submission.decoded
        out.append(_row_bytes(accept(submission, tenant, RECEIVED_AT), message, index))
    return out, decoded


def _rows_at(rev: str, corpus_path: Path, out_path: Path) -> None:
    """Run :func:`rows` with ``rev``'s ``ingestion`` package (a ``git archive`` copy)."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "archive", rev, "ingestion"], cwd=PROJECT_ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        code = (
            "import sys, orjson; sys.path.insert(0, sys.argv[1]); "
            "from benchmarks.differential_contract import rows; "
            "lines = rows(orjson.loads(open(sys.argv[2], 'rb').read())); "
            "open(sys.argv[3], 'wb').write(b'\\n'.join(lines))"
        )
        subprocess.run(
            [sys.executable, "-c", code, tmp, str(corpus_path), str(out_path)],
            cwd=PROJECT_ROOT,
            check=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rev", default="main", help="git revision to compare with")
    parser.add_argument("--messages", type=int, default=30_000)
    args = parser.parse_args()
    messages = corpus(args.messages)
    with tempfile.TemporaryDirectory() as tmp:
        corpus_path = Path(tmp) / "corpus.json"
        corpus_path.write_bytes(orjson.dumps(messages))
        _rows_at(args.rev, corpus_path, Path(tmp) / "theirs")
        theirs = (Path(tmp) / "theirs").read_bytes().split(b"\n")
    failed = False
    interpreted = rows(messages)
    compiled, taken = compiled_rows(messages)
    collected, decoded = collector_rows(messages)
    for name, ours in (
        ("interpreted", interpreted),
        ("compiled", compiled),
        ("collector", collected),
    ):
        differing = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
        rejected = sum(b'"rejection_id"' in line for line in ours)
        extra = {
            "compiled": f", {taken} through the compiled pass",
            "collector": f", {decoded} decoded in one pass with their batch",
        }.get(name, "")
        print(
            f"differential contract ({name}): {len(messages)} messages ({rejected} rejected"
            f"{extra}), {len(differing)} rows differ from {args.rev}"
        )
        for i in differing[:5]:
            print(f"  message {i}:\n    ours:   {ours[i][:400]!r}\n    theirs: {theirs[i][:400]!r}")
        failed = failed or bool(differing)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
