"""outcomes, as the runner sees it: what it consumes, what it emits, its store."""

from __future__ import annotations

from pathlib import Path

from contracts.events import (
    AuditRecorded,
    ContactRecorded,
    EventRejected,
    GpWriteback,
    NoteShared,
    PlanAgreed,
    ReferralAssigned,
    ReferralClosed,
    ReferralHeld,
    ReferralIdentityConfirmed,
    ReferralJoined,
    ReferralRecorded,
    ReferralRejected,
    ReferralResumed,
    ReferralUpdated,
    ReferralWaitlisted,
    ReferralWithdrawn,
    RosterChanged,
    SubjectAnswered,
    SubjectRequested,
    WellbeingMeasured,
)
from services.runtime.service import ServiceDef, routes

from .handlers import (
    on_accepted,
    on_assigned,
    on_closed,
    on_contact,
    on_held,
    on_identity_confirmed,
    on_joined,
    on_note,
    on_plan,
    on_rejected,
    on_resumed,
    on_roster,
    on_waitlisted,
    on_wellbeing,
    on_withdrawn,
    prepare,
    projected,
)
from .retention import RETENTION
from .rights import on_subject
from .store import OutcomesStore

SERVICE = ServiceDef(
    name="outcomes",
    directory=Path(__file__).parent,
    description="Keeps each referral's journey; tells referrers where it stands and writes "
    "codes, plans, notes, measures and summaries back to the GP record, each once.",
    # each step of a referral also brings the reporting model (<ns>_reporting) up to date
    routes=routes(
        (ReferralRecorded, projected(on_accepted)),
        (ReferralWaitlisted, projected(on_waitlisted)),
        (ReferralAssigned, projected(on_assigned)),
        (ReferralJoined, projected(on_joined)),
        (ContactRecorded, projected(on_contact)),
        (ReferralIdentityConfirmed, projected(on_identity_confirmed)),
        (PlanAgreed, on_plan),
        (WellbeingMeasured, projected(on_wellbeing)),
        (NoteShared, on_note),
        (ReferralHeld, on_held),
        (ReferralResumed, on_resumed),
        (ReferralClosed, projected(on_closed)),
        (ReferralWithdrawn, projected(on_withdrawn)),
        (ReferralRejected, on_rejected),
        (RosterChanged, on_roster),
        (SubjectRequested, on_subject),
    ),
    emits=(AuditRecorded, GpWriteback, ReferralUpdated, EventRejected, SubjectAnswered),
    store=OutcomesStore,
    schemas={"reporting": Path(__file__).parent / "reporting"},
    retention=RETENTION,
    prepare=prepare,
)
