"""notify's handlers: decide who is told what (``domain``), queue it (``store``), and emit
the referrer's status; the dispatcher sends the queued messages after the commit.

Every status carries the Gravity task status and the submission it answers. Every step is
told to the referrer once, whatever order it arrives in; one that arrives after a later
step is told with the task status the referral has now, and tells the person nothing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from contracts import CloudEvent
from contracts.enums import ReferralStatusValue, TaskStatus
from contracts.events import (
    GpCoding,
    ReferralAssigned,
    ReferralContact,
    ReferralDuplicate,
    ReferralJoined,
    ReferralRejected,
    ReferralStatus,
    ReferralUpdated,
    ReferralWaitlisted,
)
from services.runtime import early
from services.runtime.handling import UnitOfWork
from services.runtime.logs import get_logger
from services.runtime.poller import notify_channel

from .domain import (
    FINAL,
    TASK_STATUS,
    Message,
    for_person,
    for_team,
    status_text,
    telling,
)
from .settings import NotifySettings
from .store import NotifyStore, Standing

log = get_logger(__name__)
Uow = UnitOfWork[NotifyStore]
DISPATCH = "dispatch"  # the dispatcher's wake-up channel
Step = ReferralStatusValue


# in a batch's ``shared`` (``prepare``): the standings read ahead, each taken by its first
# reader
_READ_AHEAD = "notify.standings"
# the events whose handlers read where a referral stands, and only then change it
_STANDING_READERS = (
    ReferralDuplicate, ReferralWaitlisted, ReferralAssigned, ReferralJoined, ReferralUpdated,
)  # fmt: skip
# a batch of only these may have its standings read ahead (an acceptance adds a referral,
# a rejection reads and changes none)
_PREPARED = (*_STANDING_READERS, ReferralContact, ReferralRejected)


async def prepare(uow: Uow, events: list[tuple[CloudEvent[Any], Any]]) -> None:
    """At the start of a batch: where its referrals stand, read and locked in one statement
    (not one per event), and its acceptances' locks taken in another (so that each
    acceptance is added, and its held events taken, in one statement). Only for a batch of
    the pipeline's events, each of whose handlers reads a referral's standing before it
    changes it: a standing read ahead is then one no handler before its first reader has
    changed. (A batch with anything else, a person's rights, is read as it goes.)"""
    if not all(isinstance(d, _PREPARED) for _, d in events):
        return
    readers = [d.referral_id for _, d in events if isinstance(d, _STANDING_READERS)]
    accepting = [d.referral_id for _, d in events if isinstance(d, ReferralContact)]
    if accepting:
        await early.serialise_many(uow, accepting)
    if readers:
        uow.shared[_READ_AHEAD] = await uow.store.referrals.standings(readers)


async def standing(uow: Uow, event: CloudEvent[Any], referral_id: uuid.UUID) -> Standing | None:
    """Where the referral stands, locked; None if notify has not heard of it yet: then
    the event is held, and handled (told) once referral.accepted.v1 arrives, however long
    that takes (``services/runtime/early.py``). A referral found is locked by its row;
    only one not found takes the referral id's lock, as the acceptance does, and is looked
    for again: an acceptance still committing is waited for and seen, and one after it
    waits for the hold to commit, then releases the event. (In a batch, its first reader
    takes what ``prepare`` read.)"""
    ahead = uow.shared.get(_READ_AHEAD)
    if ahead and referral_id in ahead:
        return ahead.pop(referral_id)
    found = await uow.store.referrals.standing(referral_id)
    if found is None:
        await uow.serialise(referral_id)  # an acceptance still committing: wait for it
        found = await uow.store.referrals.standing(referral_id)
        if found is None:
            await uow.hold(referral_id, event)
    return found


async def tell_referrer(
    uow: Uow,
    referral_id: uuid.UUID | None,
    sender: str,
    reference: str | None,
    step: Step,
    task: TaskStatus,
    text: str,
    *,
    reason: str | None = None,
    submission_event_id: str | None = None,
    step_at: datetime | None = None,
    codes: Sequence[GpCoding] = (),
) -> None:
    await uow.emit(
        ReferralStatus(
            referral_id=referral_id,
            sender=sender,
            sender_reference=reference,
            status=step,
            message=text,
            at=datetime.now(UTC),
            task_status=task,
            reason=reason,
            submission_event_id=submission_event_id,
            step_at=step_at,
            codes=list(codes),
        )
    )


async def advance(
    uow: Uow,
    s: Standing,
    step: Step,
    task: TaskStatus,
    at: datetime,
    text: str,
    reason: str | None = None,
    *,
    placed: bool = False,
    codes: Sequence[GpCoding] = (),
    event: CloudEvent[Any] | None = None,
    messages: Sequence[Message | None] = (),
) -> bool:
    """Tell the referrer of a step, once (the inbox sees to that), whatever order steps
    arrive in: with the task status the referral now has (``domain.telling``). True if
    it is the referral's latest step; False if a later one was told already. The
    ``messages`` of the latest step (of ``event``) are queued with it (``send_later``)."""
    told = telling(s.task_status, s.status_at, task, at)
    rid = uuid.UUID(s.known.referral_id)
    if told.latest and (told.task_status in FINAL or step is Step.WITHDRAWN):
        # before this step's own messages are queued: those are not cancelled
        cancelled = await uow.store.referrals.stop_contact(rid)
        log.info("person_not_to_be_contacted", cancelled=cancelled)
    keyed = keyed_messages(event, rid, messages) if told.latest else []
    if keyed:
        await send_later(uow, rid, step, told.task_status, at, keyed, placed=placed)
    elif told.latest:
        await uow.store.referrals.stand(rid, step, told.task_status, at, placed=placed)
    else:
        log.info("late_step_told", step=step.value, task_status=told.task_status.value)
    await tell_referrer(
        uow,
        rid,
        s.known.sender,
        s.known.sender_reference,
        step,
        told.task_status,
        text,
        reason=reason,
        submission_event_id=s.submission_event_id,
        step_at=at,
        codes=codes,
    )
    return told.latest


def keyed_messages(
    event: CloudEvent[Any] | None, referral_id: uuid.UUID, messages: Sequence[Message | None]
) -> list[tuple[str, Message]]:
    """The messages to queue, each with its key (once per event and audience)."""
    keyed = []
    for message in messages:
        if message is None:
            log.debug("nothing_to_send_the_person")  # no address, or their team tells them
            continue
        assert event is not None, "a message is sent for an event"
        keyed.append((f"{referral_id}.{event.id}.{message.audience.value}", message))
    return keyed


async def send_later(
    uow: Uow,
    referral_id: uuid.UUID,
    step: Step,
    task: TaskStatus,
    at: datetime,
    keyed: list[tuple[str, Message]],
    *,
    placed: bool,
) -> None:
    """Move the referral to its latest step and queue its messages for the dispatcher,
    which is woken once they commit; none while the referral is restricted."""
    wake = notify_channel(uow.names.schema(uow.service), DISPATCH)
    queued = await uow.store.referrals.stand_and_queue(
        referral_id, step, task, at, keyed, placed=placed, wake=wake
    )
    if queued.restricted:
        log.info("notification_withheld_restricted")  # Art. 18: stored, not processed


async def on_accepted(uow: Uow, event: CloudEvent[Any], r: ReferralContact) -> None:
    # held events and this cannot miss each other: the lock is taken first (by the batch's
    # ``prepare``, or in the insert)
    lock = None if early.serialised(uow, r.referral_id) else early.lock_key(uow, r.referral_id)
    added, taken = await uow.store.referrals.add(
        r.referral_id,
        sender=r.sender,
        reference=r.sender_reference,
        pcn=r.pcn,
        contact=r.contact.model_dump(mode="json"),
        submission_event_id=r.submission_event_id,
        at=r.accepted_at,
        lock=lock,
    )
    if not added:
        return
    await tell_referrer(
        uow,
        r.referral_id,
        r.sender,
        r.sender_reference,
        Step.ACCEPTED,
        TaskStatus.RECEIVED,
        status_text(Step.ACCEPTED, r.pcn),
        submission_event_id=r.submission_event_id,
        step_at=r.accepted_at,
    )
    await uow.release(r.referral_id, taken)  # steps that arrived before the acceptance


async def on_rejected(uow: Uow, event: CloudEvent[Any], r: ReferralRejected) -> None:
    codes = ", ".join(reason.code.value for reason in r.reasons)
    await tell_referrer(
        uow,
        None,
        r.sender,
        r.sender_reference,
        Step.REJECTED,
        TaskStatus.REJECTED,
        status_text(Step.REJECTED, reasons=r.reasons),
        reason=codes,
        submission_event_id=r.submission_event_id,
        step_at=r.rejected_at,
    )


async def on_duplicate(uow: Uow, event: CloudEvent[Any], d: ReferralDuplicate) -> None:
    """A resend: the answer is where the referral stands now."""
    s = await standing(uow, event, d.referral_id)
    if s is None:
        return
    await tell_referrer(
        uow,
        d.referral_id,
        d.sender,
        d.sender_reference,
        Step.DUPLICATE,
        s.task_status,
        status_text(Step.DUPLICATE),
        reason=f"already received as event {d.original_submission_event_id}; last step: {s.step}",
        submission_event_id=d.submission_event_id,
    )


async def placed(
    uow: Uow,
    event: CloudEvent[Any],
    r: ReferralWaitlisted | ReferralAssigned,
    step: Step,
    at: datetime,
    team: str | None = None,
) -> None:
    """Tell the referrer where the referral now stands, and the person (and, given the
    ``team``'s address, the team of an assignment), unless they have already heard of a
    later step (never "waiting list" after "a link worker will contact you"). A step that
    arrived after a later one is still told to the referrer, with the current task
    status, and to nobody else."""
    s = await standing(uow, event, r.referral_id)
    if s is None:
        return
    task = TASK_STATUS[step]
    messages: list[Message | None] = []
    later = s.placed_at is None or at > s.placed_at
    if telling(s.task_status, s.status_at, task, at).latest and later:
        if s.contact_allowed:
            messages.append(for_person(s.known, r))
        if team is not None and isinstance(r, ReferralAssigned):
            messages.append(for_team(s.known, r, team))
    reason = getattr(r, "reason", None)
    await advance(
        uow,
        s,
        step,
        task,
        at,
        status_text(step, r.pcn, reason=reason),
        reason,
        placed=True,
        event=event,
        messages=messages,
    )


async def on_waitlisted(uow: Uow, event: CloudEvent[Any], r: ReferralWaitlisted) -> None:
    await placed(uow, event, r, Step.WAITLISTED, r.waitlisted_at)


async def on_assigned(uow: Uow, event: CloudEvent[Any], r: ReferralAssigned) -> None:
    settings: NotifySettings = uow.settings
    team = settings.team_address_template.format(pcn=r.pcn)
    await placed(uow, event, r, Step.ASSIGNED, r.assigned_at, team)


async def on_joined(uow: Uow, event: CloudEvent[Any], j: ReferralJoined) -> None:
    """The person already has support in the PCN: no second place, and the person is not
    told again. The referrer is answered as for any placement, assigned if the episode
    has a link worker, else waitlisted, in the same words: whether someone is already
    supported, and by whose referral, is not another organisation's to learn."""
    s = await standing(uow, event, j.referral_id)
    if s is None:
        return
    step = Step.ASSIGNED if j.link_worker_id else Step.WAITLISTED
    await advance(
        uow, s, step, TASK_STATUS[step], j.joined_at, status_text(step, j.pcn), placed=True
    )


async def on_updated(uow: Uow, event: CloudEvent[Any], u: ReferralUpdated) -> None:
    """A step after assignment, from outcomes: told to this referral's referrer."""
    s = await standing(uow, event, u.referral_id)
    if s is None:
        return
    text = status_text(u.step, u.pcn, reason=u.reason)
    # the codes outcomes wrote back to the GP record, told on the closure only
    codes = u.codes if u.step is Step.CLOSED else ()
    await advance(uow, s, u.step, u.task_status, u.at, text, u.reason, codes=codes)
    if u.step in (Step.CLOSED, Step.WITHDRAWN):
        # nothing more will be sent: the contact details' time limit starts (retention.py)
        await uow.store.referrals.ended(u.referral_id, u.at)
