"""notify's handlers: decide who is told what (``domain``), queue it (``store``), and emit
the referrer's status; the dispatcher sends the queued messages after the commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from contracts import CloudEvent
from contracts.enums import ReferralStatusValue
from contracts.events import (
    ReferralAccepted,
    ReferralAssigned,
    ReferralRejected,
    ReferralStatus,
    ReferralWaitlisted,
)
from services.runtime.errors import Deferred
from services.runtime.handling import UnitOfWork
from services.runtime.logs import get_logger

from .domain import Known, Message, for_person, for_team, status_text
from .settings import NotifySettings
from .store import NotifyStore

log = get_logger(__name__)
Uow = UnitOfWork[NotifyStore]
DISPATCH = "dispatch"  # the dispatcher's wake-up channel


async def known(uow: Uow, referral_id: uuid.UUID) -> Known:
    found = await uow.store.referrals.get_for_update(referral_id)
    if found is None:
        # referral.accepted.v1 was delayed (retrying): come back to this one later.
        raise Deferred(f"referral {referral_id} not yet known to notify")
    return found


async def tell_referrer(
    uow: Uow,
    referral_id: uuid.UUID | None,
    sender: str,
    reference: str | None,
    value: ReferralStatusValue,
    text: str,
) -> None:
    await uow.emit(
        ReferralStatus(
            referral_id=referral_id,
            sender=sender,
            sender_reference=reference,
            status=value,
            message=text,
            at=datetime.now(UTC),
        )
    )


async def send_later(
    uow: Uow, event: CloudEvent[Any], referral_id: uuid.UUID, message: Message | None
) -> None:
    """Queue a message for the dispatcher (once per referral, event type and audience)."""
    if message is None:
        log.warning("person_unreachable")  # no address on file: the team will follow up
        return
    key = f"{referral_id}.{event.type}.{message.audience.value}"
    if await uow.store.outgoing.add(key, referral_id, message):
        await uow.wake(DISPATCH)


async def on_accepted(uow: Uow, event: CloudEvent[Any], r: ReferralAccepted) -> None:
    await uow.store.referrals.add(
        r.referral_id,
        sender=r.sender,
        reference=r.sender_reference,
        pcn=r.pcn,
        contact=r.contact.model_dump(mode="json"),
    )
    await tell_referrer(
        uow,
        r.referral_id,
        r.sender,
        r.sender_reference,
        ReferralStatusValue.ACCEPTED,
        status_text(ReferralStatusValue.ACCEPTED, r.pcn),
    )


async def on_rejected(uow: Uow, event: CloudEvent[Any], r: ReferralRejected) -> None:
    await tell_referrer(
        uow,
        None,
        r.sender,
        r.sender_reference,
        ReferralStatusValue.REJECTED,
        status_text(ReferralStatusValue.REJECTED, reasons=r.reasons),
    )


async def placed(
    uow: Uow,
    event: CloudEvent[Any],
    r: ReferralWaitlisted | ReferralAssigned,
    stage: ReferralStatusValue,
) -> Known | None:
    """Tell the referrer and the person where the referral now stands, unless they have
    already heard of a later stage (a waitlisting that arrives after the assignment tells
    nobody anything). Returns what notify knows, or None if stale."""
    k = await known(uow, r.referral_id)
    if not await uow.store.referrals.advance(r.referral_id, stage.value):
        log.info("stale_placement_ignored", stage=stage.value)
        return None
    await tell_referrer(
        uow, r.referral_id, k.sender, k.sender_reference, stage, status_text(stage, r.pcn)
    )
    await send_later(uow, event, r.referral_id, for_person(k, r))
    return k


async def on_waitlisted(uow: Uow, event: CloudEvent[Any], r: ReferralWaitlisted) -> None:
    await placed(uow, event, r, ReferralStatusValue.WAITLISTED)


async def on_assigned(uow: Uow, event: CloudEvent[Any], r: ReferralAssigned) -> None:
    k = await placed(uow, event, r, ReferralStatusValue.ASSIGNED)
    if k is not None:
        settings: NotifySettings = uow.settings
        team = settings.team_address_template.format(pcn=r.pcn)
        await send_later(uow, event, r.referral_id, for_team(k, r, team))
