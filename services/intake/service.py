"""intake's handler: decode (done by the runtime), assess, store, announce."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts import UK, CloudEvent
from contracts.events import Reason, ReferralAccepted, ReferralRejected, ReferralSubmitted
from services.runtime.errors import BadMessage
from services.runtime.logs import get_logger
from services.runtime.service import ServiceDef, routes
from services.runtime.uow import UnitOfWork

from .domain import CRISIS, Reject, assess

log = get_logger(__name__)


async def record(
    uow: UnitOfWork,
    event_id: str,
    sender: str,
    reference: str | None,
    outcome: str,
    referral_id: uuid.UUID | None = None,
    reasons: tuple[Reason, ...] | list[Reason] = (),
) -> None:
    await uow.conn.execute(
        "INSERT INTO submission (event_id, sender, sender_reference, outcome, referral_id,"
        " reason_codes) VALUES ($1, $2, $3, $4, $5, $6)",
        event_id,
        sender,
        reference,
        outcome,
        referral_id,
        [r.code.value for r in reasons],
    )


def rejection(raw: dict[str, Any], sender: str, reasons: list[Reason]) -> ReferralRejected:
    """The answer to a submission that could not even be read. A person flagged as in
    crisis is still the first thing the sender hears about, malformed form or not."""
    data = raw.get("data")
    reference = data.get("sender_reference") if isinstance(data, dict) else None
    if isinstance(data, dict) and data.get("in_crisis") is True:
        reasons = [CRISIS, *reasons]
    return ReferralRejected(
        submission_event_id=str(raw.get("id")),
        sender=sender,
        sender_reference=reference if isinstance(reference, str) else None,
        reasons=reasons,
        rejected_at=datetime.now(UTC),
    )


async def on_submitted(
    uow: UnitOfWork, event: CloudEvent[Any], referral: ReferralSubmitted
) -> None:
    sender = event.sender_org
    if sender is None:
        raise BadMessage(
            "source_invalid", "source must be urn:linkwell:org:<ORG CODE> for a referral"
        )
    now = datetime.now(UTC)
    decision = assess(referral, now.astimezone(UK).date())
    if isinstance(decision, Reject):
        await record(
            uow, event.id, sender, referral.sender_reference, "rejected", reasons=decision.reasons
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

    referral_id = await uow.conn.fetchval(
        "INSERT INTO referral (referral_id, sender, sender_reference, submission_event_id,"
        " agency_type, registered_practice, pcn, pathway, needs, submission, accepted_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (sender, sender_reference) DO NOTHING RETURNING referral_id",
        uuid.uuid4(),
        sender,
        referral.sender_reference,
        event.id,
        referral.referrer.agency_type.value,
        referral.registered_practice,
        referral.pcn,
        decision.pathway.value,
        [n.value for n in referral.needs],
        referral.model_dump(mode="json"),
        now,
    )
    if referral_id is None:
        existing = await uow.conn.fetchval(
            "SELECT referral_id FROM referral WHERE sender = $1 AND sender_reference = $2",
            sender,
            referral.sender_reference,
        )
        await record(uow, event.id, sender, referral.sender_reference, "duplicate", existing)
        log.info("duplicate_referral_dropped", referral_id=str(existing))
        return

    await record(uow, event.id, sender, referral.sender_reference, "accepted", referral_id)
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


SERVICE = ServiceDef(
    name="intake",
    directory=Path(__file__).parent,
    description="Validates submitted referrals; emits referral.accepted.v1 or .rejected.v1.",
    routes=routes((ReferralSubmitted, on_submitted)),
    rejections={ReferralSubmitted.TYPE: rejection},
)
