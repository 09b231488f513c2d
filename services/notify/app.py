"""notify, as the runner sees it: what it consumes, what it emits, its store, settings and
the dispatcher that sends what its handlers queue."""

from __future__ import annotations

from pathlib import Path

from contracts.events import (
    EventRejected,
    NotificationFailed,
    ReferralAccepted,
    ReferralAssigned,
    ReferralRejected,
    ReferralStatus,
    ReferralWaitlisted,
)
from services.runtime.service import ServiceDef, routes

from .dispatcher import dispatcher
from .handlers import on_accepted, on_assigned, on_rejected, on_waitlisted
from .settings import NotifySettings
from .store import NotifyStore

SERVICE = ServiceDef(
    name="notify",
    directory=Path(__file__).parent,
    description="Tells referrers (referral.status.v1), link worker teams and people.",
    routes=routes(
        (ReferralAccepted, on_accepted),
        (ReferralRejected, on_rejected),
        (ReferralWaitlisted, on_waitlisted),
        (ReferralAssigned, on_assigned),
    ),
    emits=(ReferralStatus, NotificationFailed, EventRejected),
    store=NotifyStore,
    pollers=(dispatcher,),
    settings=NotifySettings,
)
