"""triage, as the runner sees it: what it consumes, what it emits, its store and gauges."""

from __future__ import annotations

from pathlib import Path

from contracts.events import (
    AuditRecorded,
    EventRejected,
    LinkWorkerRegistered,
    LinkWorkerUpdated,
    ReferralAssigned,
    ReferralClosed,
    ReferralJoined,
    ReferralPlacement,
    ReferralTransferred,
    ReferralWaitlisted,
    ReferralWithdrawn,
    RosterChanged,
    SubjectAnswered,
    SubjectRequested,
)
from services.runtime.service import ServiceDef, routes

from .handlers import (
    on_accepted,
    on_closed,
    on_registered,
    on_transferred,
    on_withdrawn,
    on_worker_updated,
    prepare,
)
from .metrics import observe, state_gauges
from .retention import RETENTION
from .rights import on_subject
from .store import TriageStore

SERVICE = ServiceDef(
    name="triage",
    directory=Path(__file__).parent,
    description="Places accepted referrals with a link worker who has room, or waitlists them.",
    routes=routes(
        (ReferralPlacement, on_accepted),
        (LinkWorkerRegistered, on_registered),
        (LinkWorkerUpdated, on_worker_updated),
        (ReferralClosed, on_closed),
        (ReferralWithdrawn, on_withdrawn),
        (ReferralTransferred, on_transferred),
        (SubjectRequested, on_subject),
    ),
    emits=(
        AuditRecorded,
        SubjectAnswered,
        ReferralAssigned,
        ReferralWaitlisted,
        ReferralJoined,
        RosterChanged,
        EventRejected,
    ),
    store=TriageStore,
    observe=observe,
    state_gauges=state_gauges,
    retention=RETENTION,
    prepare=prepare,
)
