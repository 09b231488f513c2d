"""Publishing commissioners' snapshots (docs/architecture/snapshots.md): the read side's
pure composition (``services/readside/snapshots.py``) over the reporting model, written by
outcomes' reporting store (``write_snapshot``, first write stands) in the caller's
transaction. The one place both meet, like ``linkwell report rebuild``: no service process
loads the read side."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.outcomes.reporting import store
from services.readside import snapshots
from services.readside.store import load


async def publish(
    conn: Any, schema: str, period: str, by: str, now: datetime
) -> snapshots.Snapshot | None:
    """Compose and write one ended month's snapshot; None if it was published already (the
    first one stands). Raises ValueError for a month that has not ended."""
    window = snapshots.month(period)
    if not snapshots.ended(window, now):
        raise ValueError(
            f"{window.label} has not ended: it can be published from"
            f" {window.end + timedelta(days=1)}"
        )
    referrals, rejections, _ = await load(conn, schema)
    snapshot = snapshots.compose(referrals, rejections, window, by)
    return snapshot if await store.write_snapshot(conn, schema, snapshot) else None


async def due(conn: Any, schema: str, now: datetime) -> list[str]:
    """The ended months not published yet."""
    return snapshots.due(
        now, await store.first_row_at(conn, schema), await store.published_periods(conn, schema)
    )
