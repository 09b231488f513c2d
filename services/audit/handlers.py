"""audit's handler: each audit.recorded.v1 appended to the chain, once (the handlers of
one transaction, a batch, share the chain's lock and end: ``uow.shared``)."""

from __future__ import annotations

from typing import Any

from contracts import CloudEvent
from contracts.events import AuditRecorded
from services.runtime.handling import UnitOfWork
from services.runtime.logs import get_logger

from .store import AuditStore

log = get_logger(__name__)


async def on_recorded(
    uow: UnitOfWork[AuditStore], event: CloudEvent[AuditRecorded], data: AuditRecorded
) -> None:
    record = await uow.store.append(fields_of(event, data), uow.shared)
    if record is not None:
        log.debug("audit_recorded", seq=record.seq, action=data.action.value)


def fields_of(event: CloudEvent[Any], data: AuditRecorded) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "source": event.source,
        "action": data.action.value,
        "recipient_kind": data.recipient_kind.value,
        "recipient_org": data.recipient_org,
        "referral_id": data.referral_id,
        "person_id": data.person_id,
        "by_service": data.by_service,
        "by_kind": data.by_kind.value,
        "by": data.by,
        "at": data.at,
        "detail": dict(data.detail),
    }
