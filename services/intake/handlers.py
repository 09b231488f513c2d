"""intake's handler: assess (``domain``), store (``store``), announce."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from contracts import UK, CloudEvent
from contracts.events import Reason, ReferralAccepted, ReferralRejected, ReferralSubmitted
from services.runtime.errors import BadMessage
from services.runtime.handling import UnitOfWork
from services.runtime.logs import get_logger

from .domain import CRISIS, Reject, assess
from .store import IntakeStore

log = get_logger(__name__)
Uow = UnitOfWork[IntakeStore]
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")


def rejection(raw: dict[str, Any], sender: str, reasons: list[Reason]) -> ReferralRejected:
    """The answer to a submission that could not even be read. A person flagged as in
    crisis is still the first thing the sender hears about, malformed form or not. Only
    what is well formed is echoed back (the sender's reference, if it is one)."""
    data = raw.get("data")
    reference = data.get("sender_reference") if isinstance(data, dict) else None
    if isinstance(data, dict) and data.get("in_crisis") is True:
        reasons = [CRISIS, *reasons]
    return ReferralRejected(
        submission_event_id=str(raw.get("id")),
        sender=sender,
        sender_reference=reference
        if isinstance(reference, str) and _REFERENCE.match(reference)
        else None,
        reasons=reasons,
        rejected_at=datetime.now(UTC),
    )


async def on_submitted(uow: Uow, event: CloudEvent[Any], referral: ReferralSubmitted) -> None:
    sender = event.sender_org
    if sender is None:
        raise BadMessage(
            "source_invalid", "source must be urn:linkwell:org:<ORG CODE> for a referral"
        )
    now = datetime.now(UTC)
    decision = assess(referral, now.astimezone(UK).date())
    if isinstance(decision, Reject):
        await uow.store.submissions.record(
            source=event.source,
            event_id=event.id,
            sender=sender,
            reference=referral.sender_reference,
            outcome="rejected",
            reason_codes=[r.code.value for r in decision.reasons],
        )
        await uow.emit(
            ReferralRejected(
                submission_event_id=event.id,
                sender=sender,
                sender_reference=referral.sender_reference,
                reasons=list(decision.reasons),
                rejected_at=now,
            )
        )
        log.info("referral_rejected", reasons=[r.code.value for r in decision.reasons])
        return

    referral_id = uuid.uuid4()
    added = await uow.store.referrals.add(
        referral_id,
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
    if not added:
        existing = await uow.store.referrals.by_reference(sender, referral.sender_reference)
        await uow.store.submissions.record(
            source=event.source,
            event_id=event.id,
            sender=sender,
            reference=referral.sender_reference,
            outcome="duplicate",
            referral_id=existing,
        )
        log.info("duplicate_referral_dropped", referral_id=str(existing))
        return

    await uow.store.submissions.record(
        source=event.source,
        event_id=event.id,
        sender=sender,
        reference=referral.sender_reference,
        outcome="accepted",
        referral_id=referral_id,
    )
    await uow.emit(
        ReferralAccepted(
            referral_id=referral_id,
            sender=sender,
            sender_reference=referral.sender_reference,
            submission_event_id=event.id,
            agency_type=referral.referrer.agency_type,
            registered_practice=referral.registered_practice,
            pcn=referral.pcn,
            needs=referral.needs,
            pathway=decision.pathway,
            nhs_number=referral.person.nhs_number,
            contact=referral.person.contact,
            accepted_at=now,
        )
    )
    log.info("referral_accepted", referral_id=str(referral_id))
