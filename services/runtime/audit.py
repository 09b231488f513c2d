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

import re
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

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")

__all__ = [
    "AuditAction",
    "AuditActorKind",
    "AuditRecipientKind",
    "AuditRecorded",
    "disclosure",
    "of_emitted",
    "record",
]

# Every emitted type an organisation receives (its EventSpec names a party), and what its
# disclosure is: the unit of work records each one as it emits it (handling.UnitOfWork.emit),
# so no handler can disclose without a record. The recipient is the routing field.
DISCLOSED: dict[str, tuple[AuditAction, AuditRecipientKind]] = {
    "referral.accepted.v1": (AuditAction.ANSWER, AuditRecipientKind.SENDER),
    "referral.accepted.v2": (AuditAction.ANSWER, AuditRecipientKind.SENDER),
    "referral.rejected.v1": (AuditAction.ANSWER, AuditRecipientKind.SENDER),
    "referral.duplicate.v1": (AuditAction.ANSWER, AuditRecipientKind.SENDER),
    "event.rejected.v1": (AuditAction.ANSWER, AuditRecipientKind.SENDER),
    "referral.status.v1": (AuditAction.STATUS, AuditRecipientKind.REFERRER),
    "referral.assigned.v1": (AuditAction.ASSIGNMENT, AuditRecipientKind.TEAM),
    "referral.waitlisted.v1": (AuditAction.ASSIGNMENT, AuditRecipientKind.TEAM),
    "referral.joined.v1": (AuditAction.ASSIGNMENT, AuditRecipientKind.TEAM),
    "referral.identity_conflict.v1": (AuditAction.ASSIGNMENT, AuditRecipientKind.TEAM),
    "gp.writeback.v1": (AuditAction.GP_WRITEBACK, AuditRecipientKind.GP),
    "notification.failed.v1": (AuditAction.NOTIFICATION, AuditRecipientKind.TEAM),
}


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


def of_emitted(event: Any, data: Any, service: str) -> AuditRecorded | None:
    """The record of an emitted event that an organisation receives; None for one that
    stays inside Linkwell."""
    kind = DISCLOSED.get(data.TYPE)
    if kind is None:
        return None
    routed_by = data.ROUTED_BY
    org = getattr(data, routed_by, None) if routed_by else None
    detail = {"event_id": event.id, "type": data.TYPE}
    for extra in ("fact", "step", "status", "audience", "medium"):
        value = getattr(data, extra, None)
        if value is not None:
            detail[extra] = getattr(value, "value", value)
    return disclosure(
        kind[0],
        kind[1],
        _org(org),
        by_service=service,
        referral_id=getattr(data, "referral_id", None),
        person_id=getattr(data, "person_id", None),
        detail=detail,
    )


def _org(value: Any) -> str | None:
    """A routing value as an organisation id (a sender, PCN or practice code)."""
    if value is None:
        return None
    text = str(value)
    return text if _ID.fullmatch(text) else None


async def enqueue_record(conn: Any, names: Any, service: str, data: AuditRecorded) -> str:
    """Write a record to ``service``'s outbox on ``conn``'s open transaction, for code that
    has no unit of work (a web page's own transaction). Returns the record's event id."""
    from .outbox import enqueue

    event = data.envelope(source=names.source(service))
    await enqueue(conn, event, names.events, data.routing_key())
    return event.id


async def publish_record(settings: Any, data: Any, service: str, connection: Any = None) -> str:
    """Publish an audit record as ``service`` to <ns>.events, persistent, and wait for the
    broker's confirm; raises if it is not confirmed. Returns the record's event id."""
    event = data.envelope(source=settings.names.source(service))
    own = connection is None
    import aio_pika

    connection = connection or await aio_pika.connect(settings.amqp_url)
    try:
        async with connection.channel(publisher_confirms=True) as channel:
            exchange = await channel.get_exchange(settings.names.events, ensure=False)
            await exchange.publish(
                aio_pika.Message(
                    event.to_json(),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    content_type="application/cloudevents+json",
                    message_id=event.id,
                    type=event.type,
                ),
                routing_key=data.routing_key(),
                mandatory=True,
            )
    finally:
        if own:
            await connection.close()
    return event.id
