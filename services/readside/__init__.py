"""The reporting read side: figures for practices, PCNs and commissioners, disclosure
control, text, CSV and JSON reports, pictures, and the dashboard
(docs/domain.md#outcomes-evidence-and-money).

Not one of the event-consuming services: it consumes no event. It reads the reporting
model outcomes publishes (schema ``<ns>_reporting``, projected in outcomes' own
transactions by ``services/outcomes/reporting/store.py``) as a read model, in read-only
sessions (``store.read_only_pool``; its role may only SELECT there), and imports nothing of
outcomes but the pure definitions of the wellbeing instruments
(``services.outcomes.wellbeing``). It owns one small schema, ``<ns>_readside``
(``migrations/``): its people's accounts and sessions (``sessions.py``,
``docs/architecture/sessions.md``). It emits one event type, ``audit.recorded.v1``
(``EMITS``): each sign-in and each page of figures, published confirmed before it is
answered. ``linkwell synthetic`` fills the separate synthetic model (``<ns>_synthetic``,
``synthetic.py``). Served by Starlette with Jinja2 templates (``web.py``,
``templates/``); matplotlib is loaded only to draw (``plots.py``), never by the dashboard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts.events import AuditRecorded

EMITS = (AuditRecorded,)  # the only event type the read side publishes
HERE = Path(__file__).parent


async def migrate_own(settings: Any) -> list[str]:
    """Apply the dashboard's migrations to ``<ns>_readside`` (as its owner, where
    ``linkwell db roles`` made one)."""
    from services.runtime.db import migrate, own_migrations

    return await migrate(
        settings.database_url, settings.names.schema("readside"), own_migrations(HERE)
    )
