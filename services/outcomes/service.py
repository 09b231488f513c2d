"""outcomes' handlers: record the event on the timeline, then write back what is due.
Each handler first locks the referral's row, so two outcomes processes never both
miss (or both send) a writeback."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from contracts import CloudEvent
from contracts.enums import AgencyType, ClosureReason, ContactMode, ContactOutcome, WritebackFact
from contracts.events import (
    ContactRecorded,
    GpCoding,
    GpWriteback,
    ReferralAccepted,
    ReferralAssigned,
    ReferralClosed,
    ReferralWaitlisted,
)
from services.runtime.errors import require_pcn
from services.runtime.logs import get_logger
from services.runtime.service import ServiceDef, routes
from services.runtime.uow import UnitOfWork

from .domain import Closure, Contact, Episode, due

log = get_logger(__name__)


async def lock_referral(conn: asyncpg.Connection, referral_id: uuid.UUID) -> None:
    await conn.execute(
        "INSERT INTO referral (referral_id) VALUES ($1) ON CONFLICT DO NOTHING", referral_id
    )
    await conn.execute("SELECT 1 FROM referral WHERE referral_id = $1 FOR UPDATE", referral_id)


async def add_to_timeline(
    uow: UnitOfWork,
    event: CloudEvent[Any],
    referral_id: uuid.UUID,
    occurred_at: datetime,
    **detail: Any,
) -> None:
    await uow.conn.execute(
        "INSERT INTO timeline (referral_id, event_id, event_type, occurred_at, detail)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
        referral_id,
        event.id,
        event.type,
        occurred_at,
        detail,
    )


async def load_episode(conn: asyncpg.Connection, referral_id: uuid.UUID) -> Episode | None:
    row = await conn.fetchrow("SELECT * FROM referral WHERE referral_id = $1", referral_id)
    if row is None or row["accepted_at"] is None:
        return None  # intake's announcement has not arrived yet: nothing can be addressed
    contacts = await conn.fetch(
        "SELECT occurred_at, detail FROM timeline WHERE referral_id = $1"
        " AND event_type = $2 ORDER BY occurred_at",
        referral_id,
        ContactRecorded.TYPE,
    )
    closure = None
    if row["closed_at"] is not None:
        closure = Closure(ClosureReason(row["close_reason"]), row["closed_at"])
    return Episode(
        referral_id=str(referral_id),
        registered_practice=row["registered_practice"],
        nhs_number=row["nhs_number"],
        agency_type=AgencyType(row["agency_type"]),
        pcn=row["pcn"],
        needs=tuple(row["needs"]),
        accepted_at=row["accepted_at"],
        contacts=tuple(
            Contact(
                c["occurred_at"],
                ContactMode(c["detail"]["mode"]),
                ContactOutcome(c["detail"]["outcome"]),
            )
            for c in contacts
        ),
        closure=closure,
    )


async def write_back(uow: UnitOfWork, referral_id: uuid.UUID) -> None:
    episode = await load_episode(uow.conn, referral_id)
    if episode is None:
        return
    written = {
        WritebackFact(r["fact"])
        for r in await uow.conn.fetch(
            "SELECT fact FROM writeback WHERE referral_id = $1", referral_id
        )
    }
    for wb in due(episode, written):
        data = GpWriteback(
            referral_id=referral_id,
            registered_practice=episode.registered_practice,
            nhs_number=episode.nhs_number,
            fact=wb.fact,
            codes=[GpCoding.of(c) for c in wb.concepts],
            summary=wb.summary,
            effective_at=wb.effective_at,
        )
        event = await uow.emit(data)
        await uow.conn.execute(
            "INSERT INTO writeback (referral_id, fact, event_id, codes) VALUES ($1, $2, $3, $4)",
            referral_id,
            wb.fact.value,
            event.id,
            [c.code for c in wb.concepts],
        )
        log.info("gp_writeback", fact=wb.fact.value, codes=[c.code for c in wb.concepts])


async def on_accepted(uow: UnitOfWork, event: CloudEvent[Any], r: ReferralAccepted) -> None:
    await lock_referral(uow.conn, r.referral_id)
    await uow.conn.execute(
        "UPDATE referral SET registered_practice = $2, nhs_number = $3, agency_type = $4,"
        " pcn = $5, needs = $6, accepted_at = $7 WHERE referral_id = $1",
        r.referral_id,
        r.registered_practice,
        r.nhs_number,
        r.agency_type.value,
        r.pcn,
        [n.value for n in r.needs],
        r.accepted_at,
    )
    await add_to_timeline(
        uow, event, r.referral_id, r.accepted_at, agency_type=r.agency_type.value, sender=r.sender
    )
    await write_back(uow, r.referral_id)


async def on_waitlisted(uow: UnitOfWork, event: CloudEvent[Any], r: ReferralWaitlisted) -> None:
    await lock_referral(uow.conn, r.referral_id)
    await uow.conn.execute(
        "UPDATE referral SET waitlisted_at = $2 WHERE referral_id = $1",
        r.referral_id,
        r.waitlisted_at,
    )
    await add_to_timeline(uow, event, r.referral_id, r.waitlisted_at, pcn=r.pcn)


async def on_assigned(uow: UnitOfWork, event: CloudEvent[Any], r: ReferralAssigned) -> None:
    await lock_referral(uow.conn, r.referral_id)
    await uow.conn.execute(
        "UPDATE referral SET assigned_at = $2, link_worker_id = $3 WHERE referral_id = $1",
        r.referral_id,
        r.assigned_at,
        r.link_worker_id,
    )
    await add_to_timeline(
        uow,
        event,
        r.referral_id,
        r.assigned_at,
        link_worker_id=r.link_worker_id,
        from_waitlist=r.from_waitlist,
    )


async def require_own(uow: UnitOfWork, event: CloudEvent[Any], referral_id: uuid.UUID) -> None:
    pcn = await uow.conn.fetchval("SELECT pcn FROM referral WHERE referral_id = $1", referral_id)
    require_pcn(event.sender_org, pcn, "this referral")


async def on_contact(uow: UnitOfWork, event: CloudEvent[Any], c: ContactRecorded) -> None:
    await lock_referral(uow.conn, c.referral_id)
    await require_own(uow, event, c.referral_id)
    await add_to_timeline(
        uow,
        event,
        c.referral_id,
        c.occurred_at,
        mode=c.mode.value,
        outcome=c.outcome.value,
        link_worker_id=c.link_worker_id,
    )
    await write_back(uow, c.referral_id)


async def on_closed(uow: UnitOfWork, event: CloudEvent[Any], c: ReferralClosed) -> None:
    await lock_referral(uow.conn, c.referral_id)
    await require_own(uow, event, c.referral_id)
    await uow.conn.execute(
        "UPDATE referral SET closed_at = $2, close_reason = $3"
        " WHERE referral_id = $1 AND closed_at IS NULL",
        c.referral_id,
        c.closed_at,
        c.reason.value,
    )
    await add_to_timeline(uow, event, c.referral_id, c.closed_at, reason=c.reason.value)
    await write_back(uow, c.referral_id)


SERVICE = ServiceDef(
    name="outcomes",
    directory=Path(__file__).parent,
    description="Keeps each referral's timeline; emits gp.writeback.v1 once per coding fact.",
    routes=routes(
        (ReferralAccepted, on_accepted),
        (ReferralWaitlisted, on_waitlisted),
        (ReferralAssigned, on_assigned),
        (ContactRecorded, on_contact),
        (ReferralClosed, on_closed),
    ),
)
