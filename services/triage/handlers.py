"""triage's handlers: load, decide (``domain``), save (``store``), emit. Every decision in
a PCN happens under that PCN's row lock; an event about a referral not known yet is held
until it is (``services/runtime/early.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contracts import CloudEvent
from contracts.enums import RejectionCode
from contracts.events import (
    LinkWorkerRegistered,
    LinkWorkerUpdated,
    ReferralAssigned,
    ReferralClosed,
    ReferralJoined,
    ReferralPlacement,
    ReferralTransferred,
    ReferralWaitlisted,
    ReferralWithdrawn,
    RosterChanged,
)
from contracts.times import implausible, summary
from services.runtime import early
from services.runtime.admission import refuse, require_own
from services.runtime.errors import BadMessage
from services.runtime.handling import UnitOfWork
from services.runtime.logs import get_logger

from .domain import matchable, plan, rehome, transfer_refusal
from .store import Placement, TriageStore

log = get_logger(__name__)
Uow = UnitOfWork[TriageStore]
WORKER_LEFT = "their link worker left; they come first on the waiting list"


async def assign(
    uow: Uow, p: Placement, worker_id: str, *, from_waitlist: bool, moved_from: str | None = None
) -> None:
    now = datetime.now(UTC)
    await uow.store.referrals.assign(p.referral_id, worker_id, now)
    await assigned(uow, p, worker_id, now, from_waitlist=from_waitlist, moved_from=moved_from)


async def assigned(
    uow: Uow,
    p: Placement,
    worker_id: str,
    at: datetime,
    *,
    from_waitlist: bool,
    moved_from: str | None = None,
) -> None:
    """Announce that ``p`` is (saved) with ``worker_id`` since ``at``."""
    await uow.emit(
        ReferralAssigned(
            referral_id=p.referral_id,
            pcn=p.pcn,
            registered_practice=p.registered_practice,
            link_worker_id=worker_id,
            needs=p.needs,
            pathway=p.pathway,
            from_waitlist=from_waitlist,
            assigned_at=at,
            transferred_from=moved_from,
        )
    )
    log.debug("referral_assigned", referral_id=str(p.referral_id), link_worker_id=worker_id)


async def roster_changed(uow: Uow, pcn: str, worker: str, capacity: int, active: bool) -> None:
    await uow.emit(
        RosterChanged(
            pcn=pcn,
            link_worker_id=worker,
            capacity=capacity,
            active=active,
            changed_at=datetime.now(UTC),
        )
    )


async def place_waiting(uow: Uow, pcn: str, arriving: str | None = None) -> set[str]:
    """Give free places to the head of the PCN's waitlist; returns the referrals placed.
    ``arriving`` is the referral this transaction has just added, if any: placing it is
    not placing from the waitlist. Caller holds the PCN lock."""
    workers, head = await uow.store.waitlist.placing(pcn)  # at most free_places(workers)
    waiting = {str(w.referral_id): w for w in head}
    placed = set()
    for referral_id, worker_id in plan(workers, list(waiting)):
        await assign(uow, waiting[referral_id], worker_id, from_waitlist=referral_id != arriving)
        placed.add(referral_id)
    return placed


# in a batch's ``shared`` (``prepare``): the PCNs whose locks it holds
_LOCKED = "triage.locked"


async def prepare(uow: Uow, events: list[tuple[CloudEvent[Any], Any]]) -> None:
    """At the start of a batch: the locks its placements take, in two statements (not two
    per placement): every referral's, then every PCN's, each in order."""
    placing = [d for _, d in events if isinstance(d, ReferralPlacement)]
    if not placing:
        return
    await early.serialise_many(uow, [d.referral_id for d in placing])
    await uow.store.roster.lock_many([d.pcn for d in placing])
    uow.shared[_LOCKED] = {d.pcn for d in placing}


async def on_accepted(uow: Uow, event: CloudEvent[Any], r: ReferralPlacement) -> None:
    if not early.serialised(uow, r.referral_id):
        await uow.serialise(r.referral_id)  # then the PCN: always in this order
    if r.pcn not in uow.shared.get(_LOCKED, ()):
        await uow.store.roster.lock(r.pcn)
    referrals = uow.store.referrals
    person_id = matchable(r.person_id, r.nhs_number_known)
    me = Placement(
        r.referral_id,
        r.pcn,
        r.registered_practice,
        [n.value for n in r.needs],
        r.pathway.value,
        "waiting",
        None,
        r.sender,
        r.accepted_at,
    )
    arrival = await referrals.arrival(me, person_id)
    episode = arrival.episode
    # decided before it is added, and added so, unless it joins an episode or events held
    # about it are to be judged first, while it waits (then it is placed after them)
    waiting = {str(w.referral_id): w for w in arrival.waiting}
    places = [] if episode or arrival.held else plan(arrival.workers, list(waiting))
    worker_id = dict(places).get(str(me.referral_id))
    now = datetime.now(UTC)
    added = await referrals.add(
        r.referral_id,
        pcn=r.pcn,
        practice=r.registered_practice,
        needs=me.needs,
        pathway=me.pathway,
        accepted_at=r.accepted_at,
        sender=r.sender,
        person_id=person_id,
        status="joined" if episode else "assigned" if worker_id else "waiting",
        episode_referral_id=episode.referral_id if episode else None,
        worker_id=episode.link_worker_id if episode else worker_id,
        assigned_at=now if worker_id else None,
    )
    if not added:
        log.debug("already_known")
        return
    if episode is not None:  # already supported in this PCN: no second place
        await uow.emit(
            ReferralJoined(
                referral_id=r.referral_id,
                episode_referral_id=episode.referral_id,
                pcn=r.pcn,
                registered_practice=r.registered_practice,
                needs=r.needs,
                link_worker_id=episode.link_worker_id,
                joined_at=datetime.now(UTC),
            )
        )
        log.debug("referral_joined_open_episode", episode=str(episode.referral_id))
        if arrival.held:
            await uow.release(r.referral_id)
        return
    # events that came before the referral (a closure, a withdrawal) are judged now; with
    # none held (read under the referral's lock, under which alone one is held), there is
    # nothing to release
    if arrival.held:
        await uow.release(r.referral_id)
        current = await referrals.get(r.referral_id)
        if current is None or current.status != "waiting":
            return  # closed or withdrawn before it could be placed: never placed
        placed = await place_waiting(uow, r.pcn, arriving=str(r.referral_id))
    else:  # nothing was held: placed as planned, anyone ahead of it on the waitlist first
        for referral_id, to in places:
            if referral_id == str(me.referral_id):
                await assigned(uow, me, to, now, from_waitlist=False)  # saved so by add
            else:
                await assign(uow, waiting[referral_id], to, from_waitlist=True)
        placed = set(dict(places))
    if str(r.referral_id) not in placed:
        await uow.emit(
            ReferralWaitlisted(
                referral_id=r.referral_id,
                pcn=r.pcn,
                registered_practice=r.registered_practice,
                waitlisted_at=datetime.now(UTC),
            )
        )
        log.debug("referral_waitlisted")


def believable(event: CloudEvent[Any], received_at: datetime | None = None) -> None:
    """Refused (``time_implausible``) if the event is dated in the future or, given the
    referral's receipt, before it (``contracts.times``). A registration dated ahead would
    otherwise win over every correction until then (a later registration wins)."""
    reasons = implausible(event.time, event.data, datetime.now(UTC), received_at)
    if reasons:
        raise BadMessage(RejectionCode.TIME_IMPLAUSIBLE.value, summary(reasons), reasons)


async def on_registered(uow: Uow, event: CloudEvent[Any], worker: LinkWorkerRegistered) -> None:
    require_own(event.sender_org, worker.pcn, "the roster")
    believable(event)
    await uow.store.roster.lock(worker.pcn)
    if not await uow.store.roster.register(
        worker.pcn, worker.link_worker_id, worker.capacity, worker.registered_at
    ):
        log.info("older_registration_ignored", link_worker_id=worker.link_worker_id)
        return
    await roster_changed(uow, worker.pcn, worker.link_worker_id, worker.capacity, True)
    placed = await place_waiting(uow, worker.pcn)
    log.info(
        "link_worker_registered",
        link_worker_id=worker.link_worker_id,
        capacity=worker.capacity,
        placed_from_waitlist=len(placed),
    )


async def on_worker_updated(uow: Uow, event: CloudEvent[Any], change: LinkWorkerUpdated) -> None:
    require_own(event.sender_org, change.pcn, "the roster")
    believable(event)
    roster, pcn, worker_id = uow.store.roster, change.pcn, change.link_worker_id
    await roster.lock(pcn)
    unknown = refuse(
        RejectionCode.UNKNOWN_LINK_WORKER,
        f"{worker_id} is not on PCN {pcn}'s roster",
        "data.link_worker_id",
    )
    if change.capacity is not None:
        # lower than the caseload: nobody is dropped, the worker takes nobody new for now
        if not await roster.set_capacity(pcn, worker_id, change.capacity):
            raise unknown
        await roster_changed(uow, pcn, worker_id, change.capacity, True)
        await place_waiting(uow, pcn)
        log.info("capacity_changed", link_worker_id=worker_id, capacity=change.capacity)
        return
    if not await roster.leave(pcn, worker_id):
        raise unknown
    people = await uow.store.referrals.assigned_to(pcn, worker_id)
    await roster_changed(uow, pcn, worker_id, 0, False)
    colleagues = await roster.loads(pcn)  # without the one who left
    by_id = {str(p.referral_id): p for p in people}
    for referral_id, to in rehome(colleagues, list(by_id)):
        p = by_id[referral_id]
        if to is not None:
            await assign(uow, p, to, from_waitlist=False, moved_from=worker_id)
            continue
        await uow.store.referrals.to_waitlist_head(p.referral_id)
        await uow.emit(
            ReferralWaitlisted(
                referral_id=p.referral_id,
                pcn=pcn,
                registered_practice=p.registered_practice,
                waitlisted_at=datetime.now(UTC),
                reason=WORKER_LEFT,
            )
        )
    log.info("link_worker_left", link_worker_id=worker_id, people=len(people))


async def known(uow: Uow, event: CloudEvent[Any], referral_id: Any) -> Placement | None:
    """The referral, locked with its PCN; None (and the event held) if not known yet. The
    referral's own lock, taken first here and by its acceptance, makes a hold and the
    acceptance's release see each other: neither can miss the other. An event dated in
    the future is refused first, never held; the caller judges it against the referral's
    receipt once its sender may act on it."""
    believable(event)
    await uow.serialise(referral_id)
    found = await uow.store.referrals.get(referral_id)
    if found is None:
        await uow.hold(referral_id, event)
        return None
    await uow.store.roster.lock(found.pcn)
    return await uow.store.referrals.get(referral_id, for_update=True)


async def end(uow: Uow, p: Placement, status: str, at: datetime, reason: str) -> None:
    """Close or withdraw: a place held is freed for the head of the waitlist."""
    if p.status in ("closed", "withdrawn"):
        return
    await uow.store.referrals.end(p.referral_id, status, at, reason)
    log.debug(f"referral_{status}", was=p.status)
    if p.status == "assigned":
        await place_waiting(uow, p.pcn)


async def on_closed(uow: Uow, event: CloudEvent[Any], closed: ReferralClosed) -> None:
    p = await known(uow, event, closed.referral_id)
    if p is None:
        return
    require_own(event.sender_org, p.pcn, "this referral")
    believable(event, p.received_at)
    await end(uow, p, "closed", closed.closed_at, closed.reason.value)


async def on_withdrawn(uow: Uow, event: CloudEvent[Any], w: ReferralWithdrawn) -> None:
    p = await known(uow, event, w.referral_id)
    if p is None:
        return
    require_own(event.sender_org, p.pcn, "this referral", p.sender)
    believable(event, p.received_at)
    await end(uow, p, "withdrawn", w.withdrawn_at, f"withdrawn by the {w.by.value}")


async def on_transferred(uow: Uow, event: CloudEvent[Any], t: ReferralTransferred) -> None:
    p = await known(uow, event, t.referral_id)
    if p is None:
        return
    require_own(event.sender_org, p.pcn, "this referral")
    believable(event, p.received_at)
    if p.status != "assigned":
        raise refuse(
            RejectionCode.NOT_ACTIVE,
            f"only a referral with a link worker can be transferred (this one is {p.status})",
            "data.referral_id",
        )
    if p.link_worker_id == t.to_link_worker_id:
        return
    why = transfer_refusal(await uow.store.roster.loads(p.pcn), t.to_link_worker_id)
    if why is not None:
        to = t.to_link_worker_id
        message = (
            f"{to} has no room: their caseload is full"
            if why is RejectionCode.AT_CAPACITY
            else f"{to} is not on PCN {p.pcn}'s roster"
        )
        raise refuse(why, message, "data.to_link_worker_id")
    await assign(uow, p, t.to_link_worker_id, from_waitlist=False, moved_from=p.link_worker_id)
