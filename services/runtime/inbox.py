"""Inbox: the events a service has handled, claimed in the handler's transaction.

Keyed by CloudEvents (source, id), which is what the spec makes unique: two agencies
that both number their events 1, 2, 3 never drop each other's referrals."""

from __future__ import annotations

import asyncpg


async def claim(conn: asyncpg.Connection, source: str, event_id: str, event_type: str) -> bool:
    """True the first time an event is seen; False for a duplicate. A concurrent claim
    of the same event waits for the first transaction and then sees it."""
    row = await conn.fetchval(
        "INSERT INTO inbox (source, event_id, event_type) VALUES ($1, $2, $3)"
        " ON CONFLICT (source, event_id) DO NOTHING RETURNING 1",
        source,
        event_id,
        event_type,
    )
    return row is not None
