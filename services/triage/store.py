"""triage's named queries: each PCN's roster (and its lock), the waitlist, referrals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .domain import WorkerLoad


@dataclass(frozen=True)
class Waiting:
    referral_id: uuid.UUID
    registered_practice: str
    needs: list[str]
    pathway: str


class Roster:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def lock(self, pcn: str) -> None:
        """Every decision in a PCN is taken under its row lock: concurrent triage
        processes place its referrals one at a time and never exceed a capacity."""
        await self.conn.execute("INSERT INTO pcn (pcn) VALUES ($1) ON CONFLICT DO NOTHING", pcn)
        await self.conn.execute("SELECT 1 FROM pcn WHERE pcn = $1 FOR UPDATE", pcn)

    async def loads(self, pcn: str) -> list[WorkerLoad]:
        rows = await self.conn.fetch(
            "SELECT w.link_worker_id, w.capacity, w.registered_at,"
            " (SELECT count(*) FROM referral r WHERE r.pcn = w.pcn"
            "   AND r.link_worker_id = w.link_worker_id AND r.status = 'assigned') AS active"
            " FROM link_worker w WHERE w.pcn = $1",
            pcn,
        )
        return [
            WorkerLoad(r["link_worker_id"], r["capacity"], r["active"], r["registered_at"])
            for r in rows
        ]

    async def register(self, pcn: str, worker_id: str, capacity: int, at: datetime) -> None:
        """Add a worker, or update their capacity (a later registration wins)."""
        await self.conn.execute(
            "INSERT INTO link_worker (link_worker_id, pcn, capacity, registered_at)"
            " VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (pcn, link_worker_id) DO UPDATE SET capacity = excluded.capacity,"
            " registered_at = excluded.registered_at, updated_at = now()"
            " WHERE link_worker.registered_at <= excluded.registered_at",
            worker_id,
            pcn,
            capacity,
            at,
        )


class Waitlist:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def head(self, pcn: str, n: int) -> list[Waiting]:
        """The ``n`` longest-waiting referrals of the PCN, in waitlist order."""
        rows = await self.conn.fetch(
            "SELECT referral_id, registered_practice, needs, pathway FROM referral"
            " WHERE pcn = $1 AND status = 'waiting' ORDER BY accepted_at, referral_id LIMIT $2",
            pcn,
            n,
        )
        return [
            Waiting(r["referral_id"], r["registered_practice"], list(r["needs"]), r["pathway"])
            for r in rows
        ]


class Referrals:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def add_waiting(
        self,
        referral_id: uuid.UUID,
        *,
        pcn: str,
        practice: str,
        needs: list[str],
        pathway: str,
        accepted_at: datetime,
    ) -> bool:
        """False if the referral is already known (placed, or closed before it came)."""
        added = await self.conn.fetchval(
            "INSERT INTO referral (referral_id, pcn, registered_practice, needs, pathway,"
            " status, accepted_at) VALUES ($1, $2, $3, $4, $5, 'waiting', $6)"
            " ON CONFLICT (referral_id) DO NOTHING RETURNING 1",
            referral_id,
            pcn,
            practice,
            needs,
            pathway,
            accepted_at,
        )
        return added is not None

    async def assign(self, referral_id: uuid.UUID, worker_id: str, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE referral SET status = 'assigned', link_worker_id = $2, assigned_at = $3"
            " WHERE referral_id = $1 AND status = 'waiting'",
            referral_id,
            worker_id,
            at,
        )

    async def pcn_of(self, referral_id: uuid.UUID) -> str | None:
        return await self.conn.fetchval(
            "SELECT pcn FROM referral WHERE referral_id = $1", referral_id
        )

    async def status_for_update(self, referral_id: uuid.UUID) -> str | None:
        return await self.conn.fetchval(
            "SELECT status FROM referral WHERE referral_id = $1 FOR UPDATE", referral_id
        )

    async def close(self, referral_id: uuid.UUID, at: datetime, reason: str) -> None:
        await self.conn.execute(
            "UPDATE referral SET status = 'closed', closed_at = $2, close_reason = $3"
            " WHERE referral_id = $1",
            referral_id,
            at,
            reason,
        )


class TriageStore:
    def __init__(self, conn: asyncpg.Connection):
        self.roster = Roster(conn)
        self.waitlist = Waitlist(conn)
        self.referrals = Referrals(conn)


async def pcn_figures(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Waitlist, caseload and capacity per PCN (for the metrics gauges)."""
    return await conn.fetch(
        "SELECT p.pcn,"
        " (SELECT count(*) FROM referral r WHERE r.pcn = p.pcn AND r.status = 'waiting') AS w,"
        " (SELECT count(*) FROM referral r WHERE r.pcn = p.pcn AND r.status = 'assigned') AS a,"
        " (SELECT coalesce(sum(capacity), 0) FROM link_worker l WHERE l.pcn = p.pcn) AS c"
        " FROM pcn p"
    )
