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


async def claim_many(
    conn: asyncpg.Connection, events: list[tuple[str, str, str]]
) -> set[tuple[str, str]]:
    """Claim several events in one statement: the (source, id) of those seen for the first
    time (an event listed twice is claimed once)."""
    rows = await conn.fetch(
        "INSERT INTO inbox (source, event_id, event_type)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
        " ON CONFLICT (source, event_id) DO NOTHING RETURNING source, event_id",
        [e[0] for e in events],
        [e[1] for e in events],
        [e[2] for e in events],
    )
    return {(r["source"], r["event_id"]) for r in rows}
