import uuid

import pytest
from pydantic import ValidationError

from contracts import EVENTS, parse_event
from contracts.events import AuditAction, AuditRecipientKind, AuditRecorded
from services.runtime.audit import disclosure


def test_disclosure_builds_a_record_of_ids():
    rid = uuid.uuid4()
    rec = disclosure(
        "status",
        "referrer",
        "A81001",
        by_service="notify",
        referral_id=str(rid),
        detail={"event_id": "abc-1", "skip": None},
    )
    assert rec.action is AuditAction.STATUS
    assert rec.recipient_kind is AuditRecipientKind.REFERRER
    assert rec.referral_id == rid
    assert rec.detail == {"event_id": "abc-1"}
    assert rec.routing_key() == "audit.recorded.v1.notify"
    assert EVENTS["audit.recorded.v1"].model is AuditRecorded


@pytest.mark.parametrize(
    "detail",
    [{"name": "Jane Smith"}, {"nhs": "943 476 5919"}, {"Bad Key": "x"}, {"note": "x" * 200}],
)
def test_free_text_is_refused_in_the_detail(detail):
    with pytest.raises(ValidationError):
        disclosure("status", "referrer", "A81001", by_service="notify", detail=detail)


def test_unknown_action_is_refused():
    with pytest.raises(ValueError):
        disclosure("gossip", "referrer", by_service="notify")


def test_a_record_survives_the_wire():
    rec = disclosure("answer", "sender", "A81001", by_service="intake")
    event = rec.envelope(source="urn:linkwell:linkwell:intake")
    assert parse_event(AuditRecorded, event.to_json()).data == rec
