"""audit's handler: each audit.recorded.v1 appended to the chain, once (the handlers of
one transaction, a batch, share the chain's lock and end: ``uow.shared``, and a batch's
records are stored together, in one statement, by its flush)."""

from __future__ import annotations

import functools
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
    if uow.gathers:  # a batch: stored with the batch's others, before its commit
        record = await uow.store.queue(fields_of(event, data), uow.shared)
        uow.at_flush("audit", functools.partial(uow.store.insert_queued, uow.shared))
        log.debug("audit_queued", seq=record.seq, action=data.action.value)
        return
    stored = await uow.store.append(fields_of(event, data), uow.shared)
    if stored is not None:
        log.debug("audit_recorded", seq=stored.seq, action=data.action.value)


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
