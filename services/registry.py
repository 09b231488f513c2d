"""The four services, by name."""

from __future__ import annotations

from services.intake.service import SERVICE as INTAKE
from services.runtime.service import ServiceDef

SERVICE_DEFS: dict[str, ServiceDef] = {s.name: s for s in (INTAKE,)}
