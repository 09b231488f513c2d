"""The four services, by name."""

from __future__ import annotations

from services.intake.service import SERVICE as INTAKE
from services.notify.service import SERVICE as NOTIFY
from services.outcomes.service import SERVICE as OUTCOMES
from services.runtime.service import ServiceDef
from services.triage.service import SERVICE as TRIAGE

SERVICE_DEFS: dict[str, ServiceDef] = {s.name: s for s in (INTAKE, TRIAGE, NOTIFY, OUTCOMES)}
