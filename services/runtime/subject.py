"""The person's rights, as each service carries them out on its own data: the shared
parts. A service's own ``rights`` module says what it holds about a person, what it may
erase and what it must keep (and on which ground); this module makes the answer and keeps
the restriction list (``subject_restriction``, in every service's schema: ids only).

Pure functions first (tested without I/O), then the few statements on the restriction
table, which every service owns a copy of, like its inbox and outbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from contracts.events import (
    AuditAction,
    AuditActorKind,
    AuditRecipientKind,
    AuditRecorded,
    SubjectAction,
    SubjectAnswered,
    SubjectItem,
    SubjectKept,
    SubjectRequested,
)
from services.runtime import audit

# The grounds named in answers. Only what the law itself says is cited here; how long a
# health record is kept is the NHS Records Management Code of Practice's retention schedule
# (the entry is applied by the retention schedule, docs/architecture/subject-rights.md).
HEALTH_RECORD = (
    "UK GDPR Art. 17(3)(c) and Art. 9(2)(h): part of the person's health and care record, "
    "kept for the period the NHS Records Management Code of Practice sets for it"
)
NO_PERSONAL_DATA = "holds ids and codes only, no name, contact details, NHS number or birth date"


@dataclass(frozen=True)
class Holding:
    """One kind of record a service keeps about a person, in plain words for the export,
    and what an erasure does to it: erased, or kept on a named ground."""

    what: str
    source: str
    kept: str
    erase: bool
    ground: str | None = None

    def __post_init__(self) -> None:
        if not self.erase and not self.ground:
            raise ValueError(f"{self.what!r} is kept on erasure: name the ground")

    def item(self, referral_id: uuid.UUID | None, content: dict[str, Any]) -> SubjectItem:
        return SubjectItem(
            what=self.what,
            source=self.source,
            kept=self.kept,
            referral_id=referral_id,
            content=content,
        )


def erasure(holdings: Iterable[Holding]) -> tuple[list[str], list[SubjectKept]]:
    """What an erasure removes and what it keeps, with the ground for each kept record."""
    done, kept = [], []
    for h in holdings:
        if h.erase:
            done.append(f"erased: {h.what}")
        else:
            kept.append(SubjectKept(what=h.what, ground=h.ground or ""))
    return done, kept


def is_late(request: SubjectRequested, now: datetime) -> bool:
    """Nobody waits for the answer any more (the operator's command has given up)."""
    return now > request.reply_by


def answer(
    request: SubjectRequested,
    service: str,
    now: datetime,
    *,
    referral_ids: Iterable[uuid.UUID] = (),
    items: Iterable[SubjectItem] = (),
    done: Iterable[str] = (),
    kept: Iterable[SubjectKept] = (),
) -> SubjectAnswered:
    """The service's answer. A late one carries no personal data: no reply queue waits
    for it, and the broker would keep an unrouted event."""
    late = is_late(request, now)
    return SubjectAnswered(
        request_id=request.request_id,
        service=service,
        action=request.action,
        referral_ids=[] if late else sorted(set(referral_ids), key=str),
        items=[] if late else list(items),
        done=list(done),
        kept=list(kept),
        late=late,
        answered_at=now,
    )


RESTRICTED_DONE = "restricted: nothing more is sent about these referrals until it is lifted"
LIFTED_DONE = "restriction lifted"


class Restrictions:
    """The referrals whose processing is restricted (Art. 18), in the service's schema."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def restrict(self, referral_ids: list[uuid.UUID], request_id: uuid.UUID) -> None:
        await self.conn.execute(
            "INSERT INTO subject_restriction (referral_id, request_id)"
            " SELECT unnest($1::uuid[]), $2 ON CONFLICT (referral_id) DO NOTHING",
            referral_ids,
            request_id,
        )

    async def lift(self, referral_ids: list[uuid.UUID]) -> None:
        await self.conn.execute(
            "DELETE FROM subject_restriction WHERE referral_id = ANY($1::uuid[])", referral_ids
        )

    async def restricted(self, referral_id: uuid.UUID) -> bool:
        return bool(
            await self.conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM subject_restriction WHERE referral_id = $1)",
                referral_id,
            )
        )

    async def forget(self, referral_ids: list[uuid.UUID]) -> None:
        """An erased referral's restriction is erased with it."""
        await self.lift(referral_ids)


async def restriction(conn: asyncpg.Connection, request: SubjectRequested) -> list[str] | None:
    """Carry out ``restrict``/``lift`` (the same in every service); None for other actions."""
    table = Restrictions(conn)
    if request.action is SubjectAction.RESTRICT:
        await table.restrict(request.referral_ids, request.request_id)
        return [RESTRICTED_DONE]
    if request.action is SubjectAction.LIFT:
        await table.lift(request.referral_ids)
        return [LIFTED_DONE]
    return None


AUDITED = {
    SubjectAction.FIND: AuditAction.EXPORT,  # which referrals are the person's: told the operator
    SubjectAction.ACCESS: AuditAction.EXPORT,
    SubjectAction.RECTIFY: AuditAction.RECTIFICATION,
    SubjectAction.RESTRICT: AuditAction.RESTRICTION,
    SubjectAction.LIFT: AuditAction.RESTRICTION,
    SubjectAction.ERASE: AuditAction.ERASURE,
}


def audit_records(
    service: str, request: SubjectRequested, answered: SubjectAnswered, operator: str | None
) -> list[AuditRecorded]:
    """The audit trail's record of the answer, one per referral it is about (ids only):
    what was done, for which request, told to the operator."""
    ids = answered.referral_ids or request.referral_ids or [None]
    return [
        audit.disclosure(
            AUDITED[request.action],
            AuditRecipientKind.OPERATOR,
            by_service=service,
            referral_id=rid,
            by_kind=AuditActorKind.OPERATOR,
            by=operator,
            at=answered.answered_at,
            detail={"request_id": request.request_id, "subject_action": request.action.value},
        )
        for rid in ids
    ]


async def respond(
    uow: Any, event: Any, request: SubjectRequested, answered: SubjectAnswered
) -> None:
    """Emit the answer, and its record on the audit trail, in the handler's transaction."""
    await uow.emit(answered)
    for record in audit_records(uow.service, request, answered, event.sender_org):
        await uow.emit(record)
