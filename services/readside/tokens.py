"""Dashboard access: one token per organisation, issued by an operator (``linkwell access
token issue``) and shown once. Only its SHA-256 digest is kept, so a copy of the
database gives no one access. A PCN's token shows that PCN's figures, exact; a
commissioner's shows every PCN with small numbers suppressed."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import asyncpg

PREFIX = "lwd_"  # recognisable in a leaked-secrets scan


@dataclass(frozen=True)
class Viewer:
    kind: str  # pcn or commissioner
    pcn: str | None
    label: str

    @property
    def exact(self) -> bool:
        """A PCN sees its own exact figures; everyone else, suppressed ones."""
        return self.kind == "pcn"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue(
    conn: asyncpg.Connection, schema: str, *, kind: str, label: str, pcn: str | None = None
) -> str:
    """A new token, returned once and stored as its digest only."""
    token = PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        f'INSERT INTO "{schema}".dashboard_token (digest, kind, pcn, label)'
        " VALUES ($1, $2, $3, $4)",
        digest(token),
        kind,
        pcn,
        label,
    )
    return token


async def revoke(conn: asyncpg.Connection, schema: str, label: str) -> int:
    result = await conn.execute(
        f'UPDATE "{schema}".dashboard_token SET revoked_at = now()'
        " WHERE label = $1 AND revoked_at IS NULL",
        label,
    )
    return int(result.split()[-1])


async def viewer(conn: asyncpg.Connection, schema: str, token: str | None) -> Viewer | None:
    """Who a token lets in, or None (unknown, revoked or malformed)."""
    if not token or not token.startswith(PREFIX) or len(token) > 100:
        return None
    row = await conn.fetchrow(
        f'SELECT kind, pcn, label FROM "{schema}".dashboard_token'
        " WHERE digest = $1 AND revoked_at IS NULL",
        digest(token),
    )
    return Viewer(row["kind"], row["pcn"], row["label"]) if row else None


async def listed(conn: asyncpg.Connection, schema: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f'SELECT kind, pcn, label, created_at, revoked_at FROM "{schema}".dashboard_token'
        " ORDER BY created_at"
    )
