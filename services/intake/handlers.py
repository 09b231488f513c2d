"""intake's handlers: assess (``domain``), store (``store``), announce. Every submission is
answered: accepted, rejected with reasons, or, for a resend, a duplicate notice naming
the referral it already made (notify follows with its current status)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from contracts import UK, CloudEvent
from contracts.enums import AgencyType, ReferralStatusValue, RejectionCode
from contracts.events import (
    PcnCode,
    PracticeCode,
    Reason,
    Reference,
    ReferralAccepted,
    ReferralDuplicate,
    ReferralIdentityConflict,
    ReferralRejected,
    ReferralSubmitted,
    ReferralUpdated,
)
from services.runtime.errors import BadMessage
from services.runtime.handling import UnitOfWork, only_when
from services.runtime.logs import get_logger

from .domain import CRISIS, IDENTITY_CONFLICT, IDENTITY_UNKNOWN, Reject, announcements, assess
from .store import IntakeStore, Known

log = get_logger(__name__)
Uow = UnitOfWork[IntakeStore]
# the contract's own field types: what is echoed back is checked as the contract checks it
_REFERENCE: TypeAdapter[str] = TypeAdapter(Reference)
_PRACTICE: TypeAdapter[str] = TypeAdapter(PracticeCode)
_PCN: TypeAdapter[str] = TypeAdapter(PcnCode)


def rejection(raw: dict[str, Any], sender: str, reasons: list[Reason]) -> ReferralRejected:
    """The answer to a submission that could not even be read. A person flagged as in
    crisis is still the first thing the sender hears about, malformed form or not. Only
    what is well formed is echoed back (the sender's reference, if it is one)."""
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    reference = data.get("sender_reference")
    if data.get("in_crisis") is True:
        reasons = [CRISIS, *reasons]
    referrer = data.get("referrer") if isinstance(data.get("referrer"), dict) else {}
    return ReferralRejected(
        submission_event_id=str(raw.get("id")),
        sender=sender,
        sender_reference=_valid(_REFERENCE, reference),
        reasons=reasons,
        rejected_at=datetime.now(UTC),
        # for the figures on refusals, where well formed
        agency_type=_member(AgencyType, referrer.get("agency_type")),
        registered_practice=_valid(_PRACTICE, data.get("registered_practice")),
        pcn=_valid(_PCN, data.get("pcn")),
    )


def _member(enum: type[AgencyType], value: object) -> AgencyType | None:
    try:
        return enum(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _valid(field: TypeAdapter[str], value: object) -> str | None:
    """The value if it is well formed for its contract type, else None."""
    if not isinstance(value, str):
        return None
    try:
        return field.validate_python(value)
    except ValidationError:
        return None


def sender_of(event: CloudEvent[Any]) -> str:
    sender = event.sender_org
    if sender is None:
        message = "source must be urn:linkwell:org:<ORG CODE> for a referral"
        raise BadMessage(
            "source_invalid",
            message,
            [Reason(code=RejectionCode.ENVELOPE_INVALID, message=message, field="source")],
        )
    return sender


async def on_submitted(uow: Uow, event: CloudEvent[Any], referral: ReferralSubmitted) -> None:
    sender = sender_of(event)
    now = datetime.now(UTC)
    decision = assess(referral, now.astimezone(UK).date(), now=now, sent=event.time)
    record = uow.store.submissions.record
    if isinstance(decision, Reject):
        await record(
            source=event.source,
            event_id=event.id,
            sender=sender,
            reference=referral.sender_reference,
            outcome="rejected",
            reasons=[r.model_dump(mode="json", exclude_none=True) for r in decision.reasons],
        )
        await uow.emit(
            ReferralRejected(
                submission_event_id=event.id,
                sender=sender,
                sender_reference=referral.sender_reference,
                reasons=list(decision.reasons),
                rejected_at=now,
                agency_type=referral.referrer.agency_type,
                registered_practice=referral.registered_practice,
                pcn=referral.pcn,
            )
        )
        log.debug("referral_rejected", reasons=[r.code.value for r in decision.reasons])
        return

    referral_id = uuid.uuid4()
    nhs_number = referral.person.nhs_number  # None: never matched; the team confirms them
    outcome = await uow.store.referrals.accept(
        referral_id,
        nhs_number=nhs_number,
        born=referral.person.date_of_birth,
        source=event.source,
        sender=sender,
        reference=referral.sender_reference,
        event_id=event.id,
        agency_type=referral.referrer.agency_type.value,
        practice=referral.registered_practice,
        pcn=referral.pcn,
        pathway=decision.pathway.value,
        needs=[n.value for n in referral.needs],
        submission=referral.model_dump(mode="json"),
        accepted_at=now,
    )
    person_id, added, conflict = outcome.person_id, outcome.added, outcome.conflict
    if not added:  # the sender resent a referral (same reference, new event id)
        known = await uow.store.referrals.by_reference(sender, referral.sender_reference)
        assert known is not None
        await record(
            source=event.source,
            event_id=event.id,
            sender=sender,
            reference=referral.sender_reference,
            outcome="duplicate",
            referral_id=known.referral_id,
        )
        await tell_duplicate(uow, event, sender, referral.sender_reference, known)
        return

    accepted = ReferralAccepted(
        referral_id=referral_id,
        sender=sender,
        sender_reference=referral.sender_reference,
        submission_event_id=event.id,
        agency_type=referral.referrer.agency_type,
        registered_practice=referral.registered_practice,
        pcn=referral.pcn,
        needs=referral.needs,
        pathway=decision.pathway,
        nhs_number=nhs_number,
        contact=referral.person.contact,
        accepted_at=now,
        person_id=person_id,
        gp_sharing=referral.gp_sharing,
    )
    for announcement in announcements(accepted, now.astimezone(UK).date()):
        await uow.emit(announcement)
    if conflict or nhs_number is None:  # to this referral's team only; not the referrer
        await uow.emit(
            ReferralIdentityConflict(
                referral_id=referral_id,
                pcn=referral.pcn,
                registered_practice=referral.registered_practice,
                detected_at=now,
                message=IDENTITY_CONFLICT if conflict else IDENTITY_UNKNOWN,
                nhs_number_missing=nhs_number is None,
            )
        )
        log.info("identity_to_confirm", referral_id=str(referral_id), missing=nhs_number is None)
    log.debug("referral_accepted", referral_id=str(referral_id))


async def on_resubmitted(uow: Uow, event: CloudEvent[Any], referral: ReferralSubmitted) -> None:
    """The same event again (a sender's retry): answered as it was the first time, never
    with silence. A referral it made: a duplicate notice; a refusal: the same reasons."""
    submission = await uow.store.submissions.get(event.source, event.id)
    if submission is None:
        return  # handled before this audit existed
    sender = sender_of(event)
    if submission.referral is not None:
        await tell_duplicate(uow, event, sender, referral.sender_reference, submission.referral)
        return
    if submission.reasons:
        await uow.emit(
            ReferralRejected(
                submission_event_id=event.id,
                sender=sender,
                sender_reference=referral.sender_reference,
                reasons=[Reason.model_validate(r) for r in submission.reasons],
                rejected_at=datetime.now(UTC),
            )
        )


async def tell_duplicate(
    uow: Uow, event: CloudEvent[Any], sender: str, reference: str, known: Known
) -> None:
    await uow.emit(
        ReferralDuplicate(
            referral_id=known.referral_id,
            sender=sender,
            sender_reference=reference,
            submission_event_id=event.id,
            original_submission_event_id=known.submission_event_id,
            received_at=datetime.now(UTC),
        )
    )
    log.debug("duplicate_referral_answered", referral_id=str(known.referral_id))


ENDING_STEPS = frozenset({ReferralStatusValue.CLOSED, ReferralStatusValue.WITHDRAWN})


@only_when(lambda u: u.step in ENDING_STEPS)  # every other step: acknowledged, untouched
async def on_updated(uow: Uow, event: CloudEvent[Any], u: ReferralUpdated) -> None:
    """Outcomes tells each referral's end (its episode closed, or it was withdrawn): the
    clock of intake's retention of the referral, and of the person, starts
    (``retention.py``). Other steps change nothing here; an unknown referral is not
    intake's (nothing to time)."""
    if u.step not in ENDING_STEPS:
        return
    if not await uow.store.referrals.ended(u.referral_id, u.at):
        log.debug("ended_referral_unknown", referral_id=str(u.referral_id))
