"""outcomes, as the runner sees it: what it consumes, what it emits, its store."""

from __future__ import annotations

from pathlib import Path

from contracts.events import (
    ContactRecorded,
    EventRejected,
    GpWriteback,
    NoteShared,
    PlanAgreed,
    ReferralAccepted,
    ReferralAssigned,
    ReferralClosed,
    ReferralHeld,
    ReferralJoined,
    ReferralResumed,
    ReferralUpdated,
    ReferralWaitlisted,
    ReferralWithdrawn,
    WellbeingMeasured,
)
from services.runtime.service import ServiceDef, routes

from .handlers import (
    on_accepted,
    on_assigned,
    on_closed,
    on_contact,
    on_held,
    on_joined,
    on_note,
    on_plan,
    on_resumed,
    on_waitlisted,
    on_wellbeing,
    on_withdrawn,
)
from .store import OutcomesStore

SERVICE = ServiceDef(
    name="outcomes",
    directory=Path(__file__).parent,
    description="Keeps each referral's journey; tells referrers where it stands and writes "
    "codes, plans, notes, measures and summaries back to the GP record, each once.",
    routes=routes(
        (ReferralAccepted, on_accepted),
        (ReferralWaitlisted, on_waitlisted),
        (ReferralAssigned, on_assigned),
        (ReferralJoined, on_joined),
        (ContactRecorded, on_contact),
        (PlanAgreed, on_plan),
        (WellbeingMeasured, on_wellbeing),
        (NoteShared, on_note),
        (ReferralHeld, on_held),
        (ReferralResumed, on_resumed),
        (ReferralClosed, on_closed),
        (ReferralWithdrawn, on_withdrawn),
    ),
    emits=(GpWriteback, ReferralUpdated, EventRejected),
    store=OutcomesStore,
)
