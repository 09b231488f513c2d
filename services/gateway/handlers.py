"""The answers to the gateway's own submissions, as they come back: each moves the step
its status page shows. Thin: load nothing, decide in ``domain``, save."""

from __future__ import annotations

from typing import Any

from contracts import CloudEvent
from contracts.enums import ReferralStatusValue
from contracts.events import ReferralAcceptedV2, ReferralDuplicate, ReferralRejected, ReferralStatus
from services.runtime.handling import UnitOfWork
from services.runtime.logs import get_logger

from . import domain
from .store import GatewayStore

log = get_logger(__name__)
PUSH = "push"  # the push dispatcher's wake-up channel
Uow = UnitOfWork[GatewayStore]


async def _note(uow: Uow, event: CloudEvent[Any], **what: Any) -> None:
    if not await uow.store.submissions.answered(**what):
        # not one of ours (another door of the same organisation): nothing to show
        log.debug("answer_not_ours", event_id=event.id, type=event.type)


async def on_accepted(uow: Uow, event: CloudEvent[Any], data: ReferralAcceptedV2) -> None:
    await _note(
        uow,
        event,
        event_id=data.submission_event_id,
        referral_id=data.referral_id,
        step=ReferralStatusValue.ACCEPTED.value,
        at=data.accepted_at,
        answer="accepted",
    )


async def on_rejected(uow: Uow, event: CloudEvent[Any], data: ReferralRejected) -> None:
    await _note(
        uow,
        event,
        event_id=data.submission_event_id,
        referral_id=None,
        step=ReferralStatusValue.REJECTED.value,
        at=data.rejected_at,
        answer="rejected",
        reasons=[reason.model_dump(mode="json") for reason in data.reasons],
    )


async def on_duplicate(uow: Uow, event: CloudEvent[Any], data: ReferralDuplicate) -> None:
    await _note(
        uow,
        event,
        event_id=data.submission_event_id,
        referral_id=data.referral_id,
        step=None,
        at=data.received_at,
        answer="duplicate",
    )


async def on_status(uow: Uow, event: CloudEvent[Any], data: ReferralStatus) -> None:
    step = data.status.value if domain.later(data.status.value) else None
    await _note(
        uow,
        event,
        event_id=data.submission_event_id,
        referral_id=data.referral_id,
        step=step,
        at=data.at,
        task_status=data.task_status.value if data.task_status else None,
    )
    if data.task_status is not None:
        # the FHIR door keeps each step it tells (a Task's history); others keep nothing
        await uow.store.fhir.told(
            event_id=data.submission_event_id,
            referral_id=data.referral_id,
            status=data.task_status.value,
            at=data.step_at or data.at,
            reason=data.reason,
            message=data.message,
            codes=[{"code": c.code, "display": c.display} for c in data.codes],
        )
        # a BaRS sender with a registered endpoint is told the step too (fhir/push.py)
        if await uow.store.fhir.queue_pushes(
            event_id=data.submission_event_id,
            referral_id=data.referral_id,
            status=data.task_status.value,
            at=data.step_at or data.at,
            reason=data.reason,
        ):
            await uow.wake(PUSH)
