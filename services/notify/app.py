"""notify, as the runner sees it: what it consumes, what it emits, its store, settings and
the dispatcher that sends what its handlers queue."""

from __future__ import annotations

from pathlib import Path

from contracts.events import (
    AuditRecorded,
    EventRejected,
    NotificationFailed,
    ReferralAssigned,
    ReferralContact,
    ReferralDuplicate,
    ReferralJoined,
    ReferralRejected,
    ReferralStatus,
    ReferralUpdated,
    ReferralWaitlisted,
    SubjectAnswered,
    SubjectRequested,
)
from services.runtime.service import ServiceDef, routes

from .dispatcher import dispatcher
from .handlers import (
    on_accepted,
    on_assigned,
    on_duplicate,
    on_joined,
    on_rejected,
    on_updated,
    on_waitlisted,
    prepare,
)
from .retention import RETENTION
from .rights import on_subject
from .settings import NotifySettings
from .store import NotifyStore

SERVICE = ServiceDef(
    name="notify",
    directory=Path(__file__).parent,
    description="Tells referrers (referral.status.v1), link worker teams and people.",
    routes=routes(
        (ReferralContact, on_accepted),
        (ReferralRejected, on_rejected),
        (ReferralDuplicate, on_duplicate),
        (ReferralWaitlisted, on_waitlisted),
        (ReferralAssigned, on_assigned),
        (ReferralJoined, on_joined),
        (ReferralUpdated, on_updated),
        (SubjectRequested, on_subject),
    ),
    emits=(AuditRecorded, ReferralStatus, NotificationFailed, EventRejected, SubjectAnswered),
    store=NotifyStore,
    pollers=(dispatcher,),
    settings=NotifySettings,
    retention=RETENTION,
    prepare=prepare,
)
