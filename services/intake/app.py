"""intake, as the runner sees it: what it consumes, what it emits, its store."""

from __future__ import annotations

from pathlib import Path

from contracts.events import (
    AuditRecorded,
    EventRejected,
    ReferralAccepted,
    ReferralAcceptedV2,
    ReferralContact,
    ReferralDuplicate,
    ReferralIdentityConflict,
    ReferralPlacement,
    ReferralRecorded,
    ReferralRejected,
    ReferralSubmitted,
    ReferralUpdated,
    SubjectAnswered,
    SubjectRequested,
)
from services.runtime.service import ServiceDef, routes

from .handlers import on_resubmitted, on_submitted, on_updated, rejection
from .retention import RETENTION
from .rights import on_subject
from .store import IntakeStore

SERVICE = ServiceDef(
    name="intake",
    directory=Path(__file__).parent,
    description="Validates submitted referrals; emits referral.accepted.v2 or .rejected.v1.",
    routes=routes(
        (ReferralSubmitted, on_submitted, on_resubmitted),
        (ReferralUpdated, on_updated),
        (SubjectRequested, on_subject),
    ),
    emits=(
        AuditRecorded,
        ReferralAccepted,
        ReferralAcceptedV2,
        ReferralPlacement,
        ReferralContact,
        ReferralRecorded,
        ReferralRejected,
        ReferralDuplicate,
        ReferralIdentityConflict,
        EventRejected,
        SubjectAnswered,
    ),
    store=IntakeStore,
    rejections={ReferralSubmitted.TYPE: rejection},
    answers_unrouted=True,  # the front door: tells senders of types nobody handles
    retention=RETENTION,
)
