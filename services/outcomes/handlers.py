"""outcomes' handlers: record each step of the journey on the referral's timeline, tell the
referrers of the episode where it stands (``referral.updated.v1``), and write to the GP
record what is due (``domain.due_entries``). Each first locks the referral's row; an
event about a referral not known yet is held until it is (``services/runtime/early.py``);
a team may act only on its own PCN's referrals, an agency only withdraw its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from contracts import CloudEvent
from contracts.enums import ContactOutcome, RejectionCode, TaskStatus
from contracts.enums import ReferralStatusValue as Step
from contracts.events import (
    ContactRecorded,
    GpCoding,
    GpWriteback,
    NoteShared,
    Observation,
    PlanAgreed,
    ReferralAssigned,
    ReferralClosed,
    ReferralHeld,
    ReferralIdentityConfirmed,
    ReferralJoined,
    ReferralRecorded,
    ReferralRejected,
    ReferralResumed,
    ReferralUpdated,
    ReferralWaitlisted,
    ReferralWithdrawn,
    RosterChanged,
    WellbeingMeasured,
)
from contracts.snomed import Concept
from contracts.times import implausible, summary
from services.runtime.admission import refuse, require_own
from services.runtime.errors import BadMessage
from services.runtime.handling import UnitOfWork
from services.runtime.logs import get_logger
from services.runtime.subject import Restrictions

from .domain import STEP_TASK, RecordEntry, closure_task, due_entries, written_back
from .reporting.store import Projection
from .store import WITHDRAWN, Entry, Known, OutcomesStore, Standing
from .wellbeing import Measurement, problems

log = get_logger(__name__)
Uow = UnitOfWork[OutcomesStore]
# what a referrer hears of a pause: Linkwell's words, never the team's reason
PAUSED = "paused by the link worker team"
REPORTING = "reporting"  # outcomes' second schema: <ns>_reporting


# ------------------------------------------------------------------ shared steps


def timeline_entry(event: CloudEvent[Any], at: datetime, **detail: Any) -> Entry:
    """The event as its referral's timeline keeps it."""
    return Entry(event.source, event.id, event.type, at, detail)


async def on_timeline(
    uow: Uow, event: CloudEvent[Any], referral_id: uuid.UUID, at: datetime, **detail: Any
) -> None:
    await uow.store.timeline.add(referral_id, timeline_entry(event, at, **detail))


def writeback(referral_id: uuid.UUID, practice: str, nhs: str, entry: RecordEntry) -> GpWriteback:
    return GpWriteback(
        referral_id=referral_id,
        registered_practice=practice,
        nhs_number=nhs,
        fact=entry.fact,
        codes=[GpCoding.of(c) for c in entry.concepts],
        summary=entry.summary,
        effective_at=entry.effective_at,
        observations=[
            Observation(
                name=o.name,
                code=GpCoding.of(o.concept) if o.concept else None,
                value=o.value,
                interpretation=o.interpretation,
            )
            for o in entry.observations
        ],
    )


async def write_due_entries(
    uow: Uow, referral_id: uuid.UUID, standing: Standing | None = None
) -> None:
    """Send the GP record every entry the episode now calls for, each once. ``standing``:
    where the episode stands, if the handler has read it since its last change."""
    if standing is None:
        standing = await uow.store.referrals.standing(referral_id)
    if standing is None or standing.episode is None:
        return
    episode = standing.episode
    if standing.restricted:
        log.info("gp_writeback_withheld_restricted")  # Art. 18: stored, not processed
        return
    for entry in due_entries(episode, standing.written):  # none while no NHS number is known
        assert episode.nhs_number is not None
        event = await uow.emit(
            writeback(referral_id, episode.registered_practice, episode.nhs_number, entry)
        )
        codes = [c.code for c in entry.concepts]
        await uow.store.gp_record.written(referral_id, entry.fact.value, entry.key, event.id, codes)
        log.debug("gp_writeback", fact=entry.fact.value, codes=codes)


async def tell(
    uow: Uow,
    episode_id: uuid.UUID,
    step: Step,
    task: TaskStatus,
    at: datetime,
    reason: str | None = None,
    codes: tuple[Concept, ...] = (),
    members: list[tuple[uuid.UUID, str]] | None = None,
) -> None:
    """Tell the referrers of every referral in the episode (notify does, per referral).
    The codes written back go to the episode's own referral only: a referral joined to the
    episode learns its step, never what the codes would tell of the episode's origin (a
    self-referral code names another referral it must not learn of). ``members``: the
    episode's referrals with their PCNs, if the handler has read them."""
    if members is None:
        members = await uow.store.referrals.members(episode_id)
    for referral_id, pcn in members:
        own = referral_id == episode_id
        await uow.emit(
            ReferralUpdated(
                referral_id=referral_id,
                pcn=pcn,
                step=step,
                task_status=task,
                reason=reason,
                at=at,
                codes=[GpCoding.of(c) for c in codes] if own else [],
            )
        )


def believable(event: CloudEvent[Any], received_at: datetime | None = None) -> None:
    """Refused (``time_implausible``) if the event is dated in the future or, given the
    referral's receipt, before it (``contracts.times``)."""
    reasons = implausible(event.time, event.data, datetime.now(UTC), received_at)
    if reasons:
        raise BadMessage(RejectionCode.TIME_IMPLAUSIBLE.value, summary(reasons), reasons)


async def own_referral(
    uow: Uow,
    event: CloudEvent[Any],
    referral_id: uuid.UUID,
    *,
    referrer_too: bool = False,
    locked: Known | None = None,
) -> Known | None:
    """The episode the event is about, locked, if the sender may act on it: its PCN's team
    (or, with ``referrer_too``, the agency that sent it), and its times are believable.
    None if the referral is not known yet: the event is then held until it is (one dated
    in the future is refused first, never held). Refused (``not_permitted``,
    ``time_implausible``) otherwise. ``locked``: the referral, if the handler has locked it
    already."""
    believable(event)
    referrals = uow.store.referrals
    known = locked if locked is not None else await referrals.lock(referral_id)
    if known.pcn is None:
        await uow.hold(referral_id, event)
        return None
    also = (known.sender,) if referrer_too else ()
    require_own(event.sender_org, known.pcn, "this referral", *also)
    believable(event, known.received_at)  # the referral named, not its episode
    if known.episode_id != known.referral_id:  # a joined referral: its episode's
        return await referrals.lock(known.episode_id)
    return known


def active(known: Known, what: str, at: datetime) -> None:
    """Refused if the episode had ended when this happened (by the event's own time: a plan
    agreed before the closure is kept, however late it arrives)."""
    if known.closed_at is not None and at > known.closed_at:
        raise refuse(RejectionCode.NOT_ACTIVE, f"{what}: the episode has ended", "data.referral_id")


_REFLECTED = "outcomes.reflected"  # in a batch's ``shared``: the referrals to project


async def reflect(uow: Uow, referral_id: uuid.UUID) -> None:
    """Bring the reporting model up to date for a referral, its episode and its members,
    in this transaction: at once for an event handled alone; for a batch, all its
    referrals in one statement at its end, from what its handlers left in the tables.
    (Projecting is a recomputation from outcomes' own rows, so a referral named by an
    event whose savepoint was rolled back is projected as it stands, harmlessly.)"""
    projection = Projection(uow.conn, uow.names.schema(REPORTING))
    if not uow.gathers:
        await projection.around(referral_id)
        return
    ids: list[uuid.UUID] = uow.shared.setdefault(_REFLECTED, [])
    ids.append(referral_id)
    uow.at_flush(_REFLECTED, lambda: projection.around(*ids))


# ------------------------------------------------------------------ from the pipeline


# in a batch's ``shared`` (``prepare``): the referrals whose row locks it holds
_LOCKED = "outcomes.locked"


async def prepare(uow: Uow, events: list[tuple[CloudEvent[Any], Any]]) -> None:
    """At the start of a batch: its acceptances' rows locked in one statement, so that each
    acceptance is recorded, and its held events taken, in one statement."""
    accepting = [d.referral_id for _, d in events if isinstance(d, ReferralRecorded)]
    if accepting:
        await uow.store.referrals.lock_many(accepting)
        uow.shared[_LOCKED] = set(accepting)


async def on_accepted(uow: Uow, event: CloudEvent[Any], r: ReferralRecorded) -> None:
    taken = await uow.store.referrals.accepted(
        r.referral_id,
        timeline_entry(event, r.accepted_at, agency_type=r.agency_type.value, sender=r.sender),
        practice=r.registered_practice,
        nhs_number=r.nhs_number,
        agency_type=r.agency_type.value,
        pcn=r.pcn,
        needs=[n.value for n in r.needs],
        at=r.accepted_at,
        sender=r.sender,
        gp_sharing=r.gp_sharing.value,
        person_id=r.person_id,
        pathway=r.pathway.value,
        take_held=r.referral_id in uow.shared.get(_LOCKED, ()),
    )
    # what teams sent before the referral was known
    if await uow.release(r.referral_id, taken):
        await write_due_entries(uow, r.referral_id)
    # else nothing is due: every entry the GP record hears of comes from a step on the
    # timeline after the acceptance (``domain.due_entries``), and there is none yet


async def on_waitlisted(uow: Uow, event: CloudEvent[Any], r: ReferralWaitlisted) -> None:
    await uow.store.referrals.step(
        r.referral_id,
        timeline_entry(event, r.waitlisted_at, pcn=r.pcn, reason=r.reason),
        waitlisted_at=r.waitlisted_at,
    )


async def on_assigned(uow: Uow, event: CloudEvent[Any], r: ReferralAssigned) -> None:
    await uow.store.referrals.step(
        r.referral_id,
        timeline_entry(
            event,
            r.assigned_at,
            link_worker_id=r.link_worker_id,
            from_waitlist=r.from_waitlist,
            transferred_from=r.transferred_from,
        ),
        assigned_at=r.assigned_at,
        link_worker_id=r.link_worker_id,
    )


async def on_joined(uow: Uow, event: CloudEvent[Any], j: ReferralJoined) -> None:
    """The referral joined the person's open episode: its journey is the episode's."""
    await uow.store.referrals.step(
        j.referral_id,
        timeline_entry(event, j.joined_at, episode_referral_id=str(j.episode_referral_id)),
        episode_referral_id=j.episode_referral_id,
    )


# ------------------------------------------------------------------ from the team


async def on_contact(uow: Uow, event: CloudEvent[Any], c: ContactRecorded) -> None:
    known = await own_referral(uow, event, c.referral_id)
    if known is None:
        return
    episode_id = known.episode_id
    first_engaged = c.outcome is ContactOutcome.ENGAGED and not known.in_progress
    contacted = timeline_entry(
        event,
        c.occurred_at,
        mode=c.mode.value,
        outcome=c.outcome.value,
        link_worker_id=c.link_worker_id,
    )
    starts = first_engaged and not known.closed  # support starts: the referrers are told
    if starts:
        await uow.store.referrals.step(episode_id, contacted, in_progress_at=c.occurred_at)
    else:
        await uow.store.timeline.add(episode_id, contacted)
    standing = await uow.store.referrals.standing(episode_id)  # the contact on its timeline
    assert standing is not None  # the episode's row is locked
    if starts:
        at = c.occurred_at
        await tell(
            uow, episode_id, Step.IN_PROGRESS, TaskStatus.IN_PROGRESS, at, members=standing.members
        )
    await write_due_entries(uow, episode_id, standing)


async def on_plan(uow: Uow, event: CloudEvent[Any], p: PlanAgreed) -> None:
    known = await own_referral(uow, event, p.referral_id)
    if known is None:
        return
    active(known, "a plan cannot be agreed", p.agreed_at)
    detail = p.model_dump(mode="json", include={"what_matters", "goals", "connections"})
    await on_timeline(uow, event, known.episode_id, p.agreed_at, **detail)
    await write_due_entries(uow, known.episode_id)


async def on_wellbeing(uow: Uow, event: CloudEvent[Any], w: WellbeingMeasured) -> None:
    wrong = problems(w.instrument, w.items)
    if wrong:
        raise refuse(RejectionCode.SCHEMA_INVALID, "; ".join(wrong), "data.items")
    known = await own_referral(uow, event, w.referral_id)
    if known is None:
        return
    active(known, "a measurement cannot be recorded", w.taken_at)
    measured = Measurement(w.instrument, w.point, tuple(w.items), w.taken_at, key=event.id)
    await uow.store.measurements.add(known.episode_id, event.source, event.id, measured)
    await on_timeline(
        uow,
        event,
        known.episode_id,
        w.taken_at,
        instrument=w.instrument.value,
        point=w.point.value,
        raw_total=measured.raw,
        metric=measured.metric,
        bands=measured.bands,
    )
    await write_due_entries(uow, known.episode_id)


async def on_note(uow: Uow, event: CloudEvent[Any], n: NoteShared) -> None:
    known = await own_referral(uow, event, n.referral_id)
    if known is None:
        return
    detail = n.model_dump(mode="json", include={"text", "attachments"})
    await on_timeline(uow, event, known.episode_id, n.shared_at, **detail)
    await write_due_entries(uow, known.episode_id)


async def on_held(uow: Uow, event: CloudEvent[Any], h: ReferralHeld) -> None:
    known = await own_referral(uow, event, h.referral_id)
    if known is None:
        return
    active(known, "support cannot be paused", h.held_at)
    if known.held:
        return
    noted = timeline_entry(event, h.held_at, reason=h.reason)
    await uow.store.referrals.step(known.episode_id, noted, held_at=h.held_at)
    # the team's reason stays with the team (and the timeline): a referrer, possibly
    # another organisation, is told in Linkwell's words only
    await tell(uow, known.episode_id, Step.ON_HOLD, STEP_TASK[Step.ON_HOLD], h.held_at, PAUSED)


async def on_resumed(uow: Uow, event: CloudEvent[Any], r: ReferralResumed) -> None:
    known = await own_referral(uow, event, r.referral_id)
    if known is None:
        return
    active(known, "support cannot be resumed", r.resumed_at)
    if not known.held:
        raise refuse(RejectionCode.NOT_ACTIVE, "support is not paused", "data.referral_id")
    noted = timeline_entry(event, r.resumed_at, reason=r.reason)
    await uow.store.referrals.step(known.episode_id, noted, held_at=None)
    task = STEP_TASK[Step.RESUMED] if known.in_progress else TaskStatus.ACCEPTED
    await tell(uow, known.episode_id, Step.RESUMED, task, r.resumed_at)


async def on_closed(uow: Uow, event: CloudEvent[Any], c: ReferralClosed) -> None:
    known = await own_referral(uow, event, c.referral_id)
    if known is None:
        return
    await on_timeline(uow, event, known.episode_id, c.closed_at, reason=c.reason.value)
    ended = await uow.store.referrals.end(known.episode_id, c.closed_at, c.reason.value)
    await write_due_entries(uow, known.episode_id)  # first: the closure tells what they coded
    if ended:
        reason = c.reason.value.replace("_", " ")
        codes: tuple[Concept, ...] = ()
        if not await Restrictions(uow.conn).restricted(known.episode_id):  # Art. 18
            codes = written_back(await uow.store.gp_record.codes_written(known.episode_id))
        task = closure_task(c.reason)
        await tell(uow, known.episode_id, Step.CLOSED, task, c.closed_at, reason, codes)


async def on_withdrawn(uow: Uow, event: CloudEvent[Any], w: ReferralWithdrawn) -> None:
    believable(event)
    referrals = uow.store.referrals
    own = await referrals.lock(w.referral_id)
    if own.pcn is not None and own.episode_id != own.referral_id:
        # a referral that joined someone's episode leaves it; the episode goes on
        require_own(event.sender_org, own.pcn, "this referral", own.sender)
        believable(event, own.received_at)
        await on_timeline(uow, event, own.referral_id, w.withdrawn_at, by=w.by.value)
        if await referrals.end(own.referral_id, w.withdrawn_at, WITHDRAWN, w.by.value, w.reason):
            await uow.emit(
                ReferralUpdated(
                    referral_id=own.referral_id,
                    pcn=own.pcn,
                    step=Step.WITHDRAWN,
                    task_status=TaskStatus.CANCELLED,
                    reason=f"by the {w.by.value}",
                    at=w.withdrawn_at,
                )
            )
        return
    known = await own_referral(uow, event, w.referral_id, referrer_too=True, locked=own)
    if known is None:
        return
    await on_timeline(uow, event, known.episode_id, w.withdrawn_at, by=w.by.value)
    ended = await uow.store.referrals.end(
        known.episode_id, w.withdrawn_at, WITHDRAWN, w.by.value, w.reason
    )
    if ended:
        why = f"by the {w.by.value}"  # never the withdrawer's own words (their timeline's)
        await tell(uow, known.episode_id, Step.WITHDRAWN, TaskStatus.CANCELLED, w.withdrawn_at, why)
    await write_due_entries(uow, known.episode_id)


async def on_identity_confirmed(
    uow: Uow, event: CloudEvent[Any], c: ReferralIdentityConfirmed
) -> None:
    """The team of the referral's PCN confirms the person's NHS number: the GP writebacks
    that waited for it go out now, each once. A referral whose NHS number is known takes
    the same number as a no-op, and refuses another (what went to a GP record stands)."""
    known = await own_referral(uow, event, c.referral_id)
    if known is None:
        return
    held = await uow.store.referrals.confirm_nhs_number(c.referral_id, c.nhs_number, c.confirmed_at)
    if held != c.nhs_number:
        raise refuse(
            RejectionCode.NOT_PERMITTED,
            "this referral's NHS number is already known and differs: it cannot be replaced",
            "data.nhs_number",
        )
    await on_timeline(uow, event, c.referral_id, c.confirmed_at)
    await write_due_entries(uow, known.episode_id)
    log.info("nhs_number_confirmed", referral_id=str(c.referral_id))


# ------------------------------------------------------------------ for the reports


def projected(handler: Any) -> Any:
    """The handler, then the reporting model brought up to date for its referral."""

    async def run(uow: Uow, event: CloudEvent[Any], data: Any) -> None:
        await handler(uow, event, data)
        await reflect(uow, data.referral_id)

    run.__name__ = run.__qualname__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


async def on_rejected(uow: Uow, event: CloudEvent[Any], r: ReferralRejected) -> None:
    """A refusal, counted in the reports (it holds no person)."""
    await uow.store.rejections.add(
        source=event.source,
        submission_event_id=r.submission_event_id,
        sender=r.sender,
        agency_type=r.agency_type.value if r.agency_type else None,
        practice=r.registered_practice,
        pcn=r.pcn,
        reasons=[reason.code.value for reason in r.reasons],
        at=r.rejected_at,
    )
    projection = Projection(uow.conn, uow.names.schema(REPORTING))
    await projection.rejection(event.source, r.submission_event_id)


async def on_roster(uow: Uow, event: CloudEvent[Any], r: RosterChanged) -> None:
    """A PCN's roster as triage holds it, for the caseload reports."""
    await uow.store.roster.set(r.pcn, r.link_worker_id, r.capacity, r.active, r.changed_at)
    await Projection(uow.conn, uow.names.schema(REPORTING)).roster(r.pcn, r.link_worker_id)
