"""The services, by name: each one's definition (``services/<name>/app.py``)."""

from __future__ import annotations

from services.audit.app import SERVICE as AUDIT
from services.gateway.app import SERVICE as GATEWAY
from services.intake.app import SERVICE as INTAKE
from services.notify.app import SERVICE as NOTIFY
from services.outcomes.app import SERVICE as OUTCOMES
from services.runtime.service import ServiceDef
from services.triage.app import SERVICE as TRIAGE

SERVICE_DEFS: dict[str, ServiceDef] = {
    s.name: s for s in (INTAKE, TRIAGE, NOTIFY, OUTCOMES, GATEWAY, AUDIT)
}
