"""outcomes' handlers: record the event on the referral's timeline, then write to the GP
record what is due (``domain.due_entries``). Each first locks the referral's row."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from contracts import CloudEvent
from contracts.events import (
    ContactRecorded,
    GpCoding,
    GpWriteback,
    ReferralAccepted,
    ReferralAssigned,
    ReferralClosed,
    ReferralWaitlisted,
)
from services.runtime.admission import require_own
from services.runtime.handling import UnitOfWork
from services.runtime.logs import get_logger

from .domain import due_entries
from .store import OutcomesStore

log = get_logger(__name__)
Uow = UnitOfWork[OutcomesStore]


async def on_timeline(
    uow: Uow, event: CloudEvent[Any], referral_id: uuid.UUID, at: datetime, **detail: Any
) -> None:
    await uow.store.timeline.add(
        referral_id,
        source=event.source,
        event_id=event.id,
        event_type=event.type,
        occurred_at=at,
        detail=detail,
    )


async def write_due_entries(uow: Uow, referral_id: uuid.UUID) -> None:
    """Send the GP record every entry the episode now calls for, each once."""
    episode = await uow.store.referrals.episode(referral_id)
    if episode is None:
        return
    for entry in due_entries(episode, await uow.store.gp_record.facts_written(referral_id)):
        event = await uow.emit(
            GpWriteback(
                referral_id=referral_id,
                registered_practice=episode.registered_practice,
                nhs_number=episode.nhs_number,
                fact=entry.fact,
                codes=[GpCoding.of(c) for c in entry.concepts],
                summary=entry.summary,
                effective_at=entry.effective_at,
            )
        )
        codes = [c.code for c in entry.concepts]
        await uow.store.gp_record.written(referral_id, entry.fact.value, event.id, codes)
        log.info("gp_writeback", fact=entry.fact.value, codes=codes)


async def on_accepted(uow: Uow, event: CloudEvent[Any], r: ReferralAccepted) -> None:
    await uow.store.referrals.lock(r.referral_id)
    await uow.store.referrals.accepted(
        r.referral_id,
        practice=r.registered_practice,
        nhs_number=r.nhs_number,
        agency_type=r.agency_type.value,
        pcn=r.pcn,
        needs=[n.value for n in r.needs],
        at=r.accepted_at,
    )
    await on_timeline(
        uow, event, r.referral_id, r.accepted_at, agency_type=r.agency_type.value, sender=r.sender
    )
    await uow.release(r.referral_id)  # what teams sent before the referral was known
    await write_due_entries(uow, r.referral_id)


async def on_waitlisted(uow: Uow, event: CloudEvent[Any], r: ReferralWaitlisted) -> None:
    await uow.store.referrals.lock(r.referral_id)
    await uow.store.referrals.waitlisted(r.referral_id, r.waitlisted_at)
    await on_timeline(uow, event, r.referral_id, r.waitlisted_at, pcn=r.pcn)


async def on_assigned(uow: Uow, event: CloudEvent[Any], r: ReferralAssigned) -> None:
    await uow.store.referrals.lock(r.referral_id)
    await uow.store.referrals.assigned(r.referral_id, r.link_worker_id, r.assigned_at)
    await on_timeline(
        uow,
        event,
        r.referral_id,
        r.assigned_at,
        link_worker_id=r.link_worker_id,
        from_waitlist=r.from_waitlist,
    )


async def own_referral(uow: Uow, event: CloudEvent[Any], referral_id: uuid.UUID) -> bool:
    """Lock the referral; True if the sender's team may act on it, False if it is not known
    yet (the event is then held until it is); refused if it is another PCN's."""
    await uow.store.referrals.lock(referral_id)
    pcn = await uow.store.referrals.pcn_of(referral_id)
    if pcn is None:
        await uow.hold(referral_id, event)
        return False
    require_own(event.sender_org, pcn, "this referral")
    return True


async def on_contact(uow: Uow, event: CloudEvent[Any], c: ContactRecorded) -> None:
    if not await own_referral(uow, event, c.referral_id):
        return
    await on_timeline(
        uow,
        event,
        c.referral_id,
        c.occurred_at,
        mode=c.mode.value,
        outcome=c.outcome.value,
        link_worker_id=c.link_worker_id,
    )
    await write_due_entries(uow, c.referral_id)


async def on_closed(uow: Uow, event: CloudEvent[Any], c: ReferralClosed) -> None:
    if not await own_referral(uow, event, c.referral_id):
        return
    await uow.store.referrals.closed(c.referral_id, c.closed_at, c.reason.value)
    await on_timeline(uow, event, c.referral_id, c.closed_at, reason=c.reason.value)
    await write_due_entries(uow, c.referral_id)
