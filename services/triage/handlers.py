"""triage's handlers: load, decide (``domain``), save (``store``), emit. Every decision in
a PCN happens under that PCN's row lock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contracts import CloudEvent
from contracts.events import (
    LinkWorkerRegistered,
    ReferralAccepted,
    ReferralAssigned,
    ReferralClosed,
    ReferralWaitlisted,
)
from services.runtime.admission import require_own
from services.runtime.handling import UnitOfWork
from services.runtime.logs import get_logger

from .domain import free_places, plan
from .store import TriageStore

log = get_logger(__name__)
Uow = UnitOfWork[TriageStore]


async def place_waiting(uow: Uow, pcn: str, arriving: str | None = None) -> set[str]:
    """Give free places to the head of the PCN's waitlist; returns the referrals placed.
    ``arriving`` is the referral this transaction has just added, if any: placing it is
    not placing from the waitlist. Caller holds the PCN lock."""
    workers = await uow.store.roster.loads(pcn)
    room = free_places(workers)
    if room == 0:
        return set()
    waiting = {str(w.referral_id): w for w in await uow.store.waitlist.head(pcn, room)}
    now = datetime.now(UTC)
    placed = set()
    for referral_id, worker_id in plan(workers, list(waiting)):
        row = waiting[referral_id]
        await uow.store.referrals.assign(row.referral_id, worker_id, now)
        await uow.emit(
            ReferralAssigned(
                referral_id=row.referral_id,
                pcn=pcn,
                registered_practice=row.registered_practice,
                link_worker_id=worker_id,
                needs=row.needs,
                pathway=row.pathway,
                from_waitlist=referral_id != arriving,
                assigned_at=now,
            )
        )
        placed.add(referral_id)
        log.info("referral_assigned", referral_id=referral_id, link_worker_id=worker_id)
    return placed


async def on_accepted(uow: Uow, event: CloudEvent[Any], referral: ReferralAccepted) -> None:
    await uow.store.roster.lock(referral.pcn)
    added = await uow.store.referrals.add_waiting(
        referral.referral_id,
        pcn=referral.pcn,
        practice=referral.registered_practice,
        needs=[n.value for n in referral.needs],
        pathway=referral.pathway.value,
        accepted_at=referral.accepted_at,
    )
    if not added:
        log.info("already_placed_or_closed")
        return
    # events that came before the referral (a closure) are judged and applied now
    await uow.release(referral.referral_id)
    if await uow.store.referrals.status_for_update(referral.referral_id) != "waiting":
        return  # closed before it could be placed: it is never placed
    placed = await place_waiting(uow, referral.pcn, arriving=str(referral.referral_id))
    if str(referral.referral_id) not in placed:
        await uow.emit(
            ReferralWaitlisted(
                referral_id=referral.referral_id,
                pcn=referral.pcn,
                registered_practice=referral.registered_practice,
                waitlisted_at=datetime.now(UTC),
            )
        )
        log.info("referral_waitlisted")


async def on_registered(uow: Uow, event: CloudEvent[Any], worker: LinkWorkerRegistered) -> None:
    require_own(event.sender_org, worker.pcn, "the roster")
    await uow.store.roster.lock(worker.pcn)
    await uow.store.roster.register(
        worker.pcn, worker.link_worker_id, worker.capacity, worker.registered_at
    )
    placed = await place_waiting(uow, worker.pcn)
    log.info(
        "link_worker_registered",
        link_worker_id=worker.link_worker_id,
        capacity=worker.capacity,
        placed_from_waitlist=len(placed),
    )


async def on_closed(uow: Uow, event: CloudEvent[Any], closed: ReferralClosed) -> None:
    referrals = uow.store.referrals
    pcn = await referrals.pcn_of(closed.referral_id)
    if pcn is None:  # not known yet: judged once it is
        await uow.hold(closed.referral_id, event)
        return
    require_own(event.sender_org, pcn, "this referral")
    await uow.store.roster.lock(pcn)
    previous = await referrals.status_for_update(closed.referral_id)
    if previous == "closed":
        return
    await referrals.close(closed.referral_id, closed.closed_at, closed.reason.value)
    log.info("referral_closed", was=previous)
    if previous == "assigned":
        await place_waiting(uow, pcn)
