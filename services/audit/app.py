"""audit, as the runner sees it: it consumes every audit.recorded.v1 and keeps the chain."""

from __future__ import annotations

from pathlib import Path

from contracts.events import AuditRecorded, EventRejected
from services.runtime.service import ServiceDef, routes

from .handlers import on_recorded
from .store import AuditStore

SERVICE = ServiceDef(
    name="audit",
    directory=Path(__file__).parent,
    description="Keeps the append-only, hash-chained trail of every disclosure.",
    routes=routes((AuditRecorded, on_recorded)),
    emits=(EventRejected,),
    store=AuditStore,
)
