"""Several events to a message: which outbox rows the relay sends together, and what a
consumer admits from a batch (each event as if alone; anything else refused whole)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from contracts.events import AuditAction, AuditRecipientKind, AuditRecorded
from contracts.schema import example
from services.audit.app import SERVICE as AUDIT
from services.runtime.batch_admission import MAX_BATCH_EVENTS, admit_batch
from services.runtime.delivery import Delivery
from services.runtime.errors import BadMessage
from services.runtime.names import Names
from services.runtime.outbox import BATCHED, MAX_BATCHED, messages_of

NAMES = Names("linkwell")
MODELS = {name: route.model for name, route in AUDIT.routes.items()}
KEY = "audit.recorded.v1.intake"


def row(n: int, event_type: str = "audit.recorded.v1", key: str = KEY, headers=None) -> dict:
    return {
        "id": n,
        "event_id": f"e{n}",
        "event_type": event_type,
        "exchange": NAMES.events,
        "routing_key": key,
        "headers": headers,
    }


def test_audit_rows_go_together_per_routing_key_and_everything_else_alone():
    rows = [
        row(1),
        row(2, "referral.status.v1", "referral.status.v1.A81001"),
        row(3),
        row(4, key="audit.recorded.v1.notify"),
        row(5, headers={"x-linkwell-reason": "early"}),  # a dead letter: alone, mandatory
        row(6),
    ]
    units = [[r["id"] for r in unit] for unit in messages_of(rows)]
    assert units == [[1, 3, 6], [2], [4], [5]]


def test_only_what_no_organisation_receives_is_ever_batched():
    """An organisation's queue gets one event per message, always; a batched type goes
    to Linkwell's services alone, each of which takes batches of it."""
    from contracts import EVENTS, Direction
    from services.registry import SERVICE_DEFS

    assert "audit.recorded.v1" in BATCHED and "referral.placement.v1" in BATCHED
    for event_type in BATCHED:
        spec = EVENTS[event_type]
        assert spec.model.DIRECTION is Direction.EMITTED and spec.parties == (), event_type
        consumers = [s.name for s in SERVICE_DEFS.values() if event_type in s.routes]
        assert consumers and "gateway" not in consumers, (event_type, consumers)


def test_a_batch_holds_at_most_its_limit():
    units = messages_of([row(n) for n in range(MAX_BATCHED * 2 + 1)])
    assert [len(u) for u in units] == [MAX_BATCHED, MAX_BATCHED, 1]
    assert MAX_BATCHED <= MAX_BATCH_EVENTS


def record() -> dict:
    data = AuditRecorded(
        action=AuditAction.ANSWER,
        recipient_kind=AuditRecipientKind.SENDER,
        recipient_org="A81001",
        referral_id=uuid.uuid4(),
        by_service="intake",
        at=datetime.now(UTC),
    )
    return json.loads(data.envelope(source=NAMES.source("intake")).to_json())


def admit(body, key: str = KEY, exchange: str | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return admit_batch(
        raw,
        Delivery(exchange or NAMES.events, key, user_id="linkwell-intake"),
        names=NAMES,
        service="audit",
        models=MODELS,
        trusted=frozenset(),
        batched=BATCHED,
    )


def test_each_event_of_a_batch_is_admitted():
    events = [record(), record()]
    admitted = admit(events)
    assert [a.envelope.id for a in admitted] == [e["id"] for e in events]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "unreadable"),
        (b"[" * 100_000 + b"]" * 100_000, "unreadable"),
        (b"{}", "unreadable"),
        (b"[]", "unreadable"),
        ([{}] * (MAX_BATCH_EVENTS + 1), "unreadable"),
    ],
)
def test_what_is_not_a_batch_is_refused(body, reason):
    with pytest.raises(BadMessage) as refused:
        admit(body)
    assert refused.value.reason == reason


def test_one_bad_event_refuses_the_batch_and_says_which():
    events = [record(), record()]
    events[1]["data"]["recipient_org"] = "Dr Jones, 12 High St"
    with pytest.raises(BadMessage) as refused:
        admit(events)
    assert refused.value.reason == "schema_invalid"
    assert refused.value.detail.startswith("event 1 of the batch")


def test_a_batch_of_another_type_than_its_routing_key_is_refused():
    other = example("referral.status.v1")
    with pytest.raises(BadMessage):
        admit([record(), other])


@pytest.mark.parametrize(
    ("key", "exchange"),
    [
        ("referral.status.v1.A81001", None),  # a type no one sends batched
        (KEY, "linkwell.inbound"),  # from outside: never batched
    ],
)
def test_only_a_batched_type_from_inside_may_come_batched(key, exchange):
    with pytest.raises(BadMessage) as refused:
        admit([record()], key=key, exchange=exchange)
    assert refused.value.reason == "unsupported_type"
