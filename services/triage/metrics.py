"""triage's own metrics: per PCN waitlist, caseload, capacity, and the decisions made."""

from __future__ import annotations

from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge

from contracts import CloudEvent
from contracts.events import ReferralAssigned, ReferralWaitlisted
from services.runtime.metrics import set_per_label

from .store import pcn_figures

WAITLIST = Gauge(
    "linkwell_triage_waitlist_length", "Referrals waiting for a place, per PCN.", ["pcn"]
)
CASELOAD = Gauge(
    "linkwell_triage_active_assignments", "Referrals assigned and not closed, per PCN.", ["pcn"]
)
CAPACITY = Gauge("linkwell_triage_capacity", "Places on the PCN's link worker roster.", ["pcn"])
ASSIGNMENTS = Counter(
    "linkwell_triage_assignments", "Assignments made by this process, per PCN.", ["pcn"]
)
WAITLISTINGS = Counter(
    "linkwell_triage_waitlistings", "Referrals waitlisted by this process, per PCN.", ["pcn"]
)


def observe(events: list[CloudEvent[Any]]) -> None:
    """Per-PCN counters, once the placements are committed."""
    for event in events:
        if event.type == ReferralAssigned.TYPE:
            ASSIGNMENTS.labels(event.data.pcn).inc()
        elif event.type == ReferralWaitlisted.TYPE:
            WAITLISTINGS.labels(event.data.pcn).inc()


async def state_gauges(conn: asyncpg.Connection) -> None:
    """Waitlist, caseload and capacity per PCN, from the shared state all replicas use."""
    rows = await pcn_figures(conn)
    set_per_label(WAITLIST, ((r["pcn"], r["w"]) for r in rows))
    set_per_label(CASELOAD, ((r["pcn"], r["a"]) for r in rows))
    set_per_label(CAPACITY, ((r["pcn"], r["c"]) for r in rows))
