"""Inbox: the event ids a service has handled, claimed in the handler's transaction."""

from __future__ import annotations

import asyncpg


async def claim(conn: asyncpg.Connection, event_id: str, event_type: str) -> bool:
    """True the first time an event id is seen; False for a duplicate. A concurrent claim
    of the same id waits for the first transaction and then sees it."""
    row = await conn.fetchval(
        "INSERT INTO inbox (event_id, event_type) VALUES ($1, $2)"
        " ON CONFLICT (event_id) DO NOTHING RETURNING 1",
        event_id,
        event_type,
    )
    return row is not None
