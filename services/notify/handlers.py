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
from services.runtime.handling import UnitOfWork
from services.runtime.logs import get_logger
from services.runtime.subject import Restrictions

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


async def standing(uow: Uow, event: CloudEvent[Any], referral_id: uuid.UUID) -> Standing | None:
    """Where the referral stands, locked; None if notify has not heard of it yet: then
    the event is held, and handled (told) once referral.accepted.v1 arrives, however long
    that takes (``services/runtime/early.py``)."""
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
) -> bool:
    """Tell the referrer of a step, once (the inbox sees to that), whatever order steps
    arrive in: with the task status the referral now has (``domain.telling``). True if
    it is the referral's latest step; False if a later one was told already."""
    told = telling(s.task_status, s.status_at, task, at)
    rid = uuid.UUID(s.known.referral_id)
    if told.latest:
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
    if told.latest and (told.task_status in FINAL or step is Step.WITHDRAWN):
        cancelled = await uow.store.referrals.stop_contact(rid)
        log.info("person_not_to_be_contacted", cancelled=cancelled)
    return told.latest


async def send_later(
    uow: Uow, event: CloudEvent[Any], referral_id: uuid.UUID, message: Message | None
) -> None:
    """Queue a message for the dispatcher (once per event and audience)."""
    if message is None:
        log.debug("nothing_to_send_the_person")  # no address, or their team tells them
        return
    if await Restrictions(uow.conn).restricted(referral_id):
        log.info("notification_withheld_restricted")  # Art. 18: stored, not processed
        return
    key = f"{referral_id}.{event.id}.{message.audience.value}"
    if await uow.store.outgoing.add(key, referral_id, message):
        await uow.wake(DISPATCH)


async def on_accepted(uow: Uow, event: CloudEvent[Any], r: ReferralContact) -> None:
    await uow.serialise(r.referral_id)
    added = await uow.store.referrals.add(
        r.referral_id,
        sender=r.sender,
        reference=r.sender_reference,
        pcn=r.pcn,
        contact=r.contact.model_dump(mode="json"),
        submission_event_id=r.submission_event_id,
        at=r.accepted_at,
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
    await uow.release(r.referral_id)  # steps that arrived before the acceptance


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
) -> Standing | None:
    """Tell the referrer where the referral now stands, and the person, unless they have
    already heard of a later step (never "waiting list" after "a link worker will contact
    you"). Returns what notify knows, or None if the step arrived after a later one (the
    referrer is still told of it, with the current task status)."""
    s = await standing(uow, event, r.referral_id)
    if s is None:
        return None
    reason = getattr(r, "reason", None)
    latest = await advance(
        uow,
        s,
        step,
        TASK_STATUS[step],
        at,
        status_text(step, r.pcn, reason=reason),
        reason,
        placed=True,
    )
    if not latest or (s.placed_at is not None and at <= s.placed_at):
        return None
    if s.contact_allowed:
        await send_later(uow, event, r.referral_id, for_person(s.known, r))
    return s


async def on_waitlisted(uow: Uow, event: CloudEvent[Any], r: ReferralWaitlisted) -> None:
    await placed(uow, event, r, Step.WAITLISTED, r.waitlisted_at)


async def on_assigned(uow: Uow, event: CloudEvent[Any], r: ReferralAssigned) -> None:
    s = await placed(uow, event, r, Step.ASSIGNED, r.assigned_at)
    if s is not None:
        settings: NotifySettings = uow.settings
        team = settings.team_address_template.format(pcn=r.pcn)
        await send_later(uow, event, r.referral_id, for_team(s.known, r, team))


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
