"""Recording a disclosure in one line (``docs/architecture/audit.md``).

A service records what it discloses in the transaction of the disclosure itself, by
emitting an ``audit.recorded.v1`` to its outbox: the record exists if and only if the
disclosure committed. In a handler::

    await audit.record(uow, AuditAction.STATUS, AuditRecipientKind.REFERRER, "A81001",
                       referral_id=rid, detail={"event_id": event.id})

or build the data and emit it yourself: ``await uow.emit(audit.disclosure(...))``. The
service must list ``AuditRecorded`` in its ``emits`` (``services/<svc>/app.py``).

An operator command that is not inside a service transaction publishes its record
directly, persistent and publisher-confirmed, before it reports success
(``services/ops/audit_cli.py: publish_record``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from contracts.envelope import now
from contracts.events import (
    AuditAction,
    AuditActorKind,
    AuditRecipientKind,
    AuditRecorded,
)

__all__ = [
    "AuditAction",
    "AuditActorKind",
    "AuditRecipientKind",
    "AuditRecorded",
    "disclosure",
    "record",
]


def disclosure(
    action: AuditAction | str,
    recipient_kind: AuditRecipientKind | str,
    recipient_org: str | None = None,
    *,
    by_service: str,
    referral_id: uuid.UUID | str | None = None,
    person_id: uuid.UUID | str | None = None,
    by_kind: AuditActorKind | str = AuditActorKind.SERVICE,
    by: str | None = None,
    at: datetime | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditRecorded:
    """The record of one disclosure (validated: ids only; a value that is not an id fails
    here, in the transaction of the disclosure, rather than being recorded)."""
    return AuditRecorded(
        action=AuditAction(action),
        recipient_kind=AuditRecipientKind(recipient_kind),
        recipient_org=recipient_org,
        referral_id=uuid.UUID(str(referral_id)) if referral_id is not None else None,
        person_id=uuid.UUID(str(person_id)) if person_id is not None else None,
        by_service=by_service,
        by_kind=AuditActorKind(by_kind),
        by=by,
        at=at or now(),
        detail={k: str(v) for k, v in (detail or {}).items() if v is not None},
    )


async def record(
    uow: Any,
    action: AuditAction | str,
    recipient_kind: AuditRecipientKind | str,
    recipient_org: str | None = None,
    **fields: Any,
) -> None:
    """Emit the record of a disclosure in ``uow``'s transaction (the recording service is
    the unit of work's)."""
    fields.setdefault("by_service", uow.service)
    await uow.emit(disclosure(action, recipient_kind, recipient_org, **fields))
