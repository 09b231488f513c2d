"""outcomes, as the runner sees it: what it consumes, what it emits, its store."""

from __future__ import annotations

from pathlib import Path

from contracts.events import (
    ContactRecorded,
    EventRejected,
    GpWriteback,
    ReferralAccepted,
    ReferralAssigned,
    ReferralClosed,
    ReferralWaitlisted,
)
from services.runtime.service import ServiceDef, routes

from .handlers import on_accepted, on_assigned, on_closed, on_contact, on_waitlisted
from .store import OutcomesStore

SERVICE = ServiceDef(
    name="outcomes",
    directory=Path(__file__).parent,
    description="Keeps each referral's timeline; emits gp.writeback.v1 once per coding fact.",
    routes=routes(
        (ReferralAccepted, on_accepted),
        (ReferralWaitlisted, on_waitlisted),
        (ReferralAssigned, on_assigned),
        (ContactRecorded, on_contact),
        (ReferralClosed, on_closed),
    ),
    emits=(GpWriteback, EventRejected),
    store=OutcomesStore,
)
