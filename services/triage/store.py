"""triage's named queries: each PCN's roster (and its lock), the waitlist, referrals."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from .domain import WorkerLoad


@dataclass(frozen=True)
class Placement:
    """What triage knows of a referral."""

    referral_id: uuid.UUID
    pcn: str
    registered_practice: str
    needs: list[str]
    pathway: str
    status: str  # waiting, assigned, joined, closed, withdrawn
    link_worker_id: str | None
    sender: str | None
    received_at: datetime | None = None  # when intake accepted it (Linkwell received it)


@dataclass(frozen=True)
class Arrival:
    """What placing a referral as it arrives depends on (``Referrals.arrival``)."""

    episode: Placement | None  # the person's open referral in the PCN, if any
    workers: list[WorkerLoad]  # every active worker of the PCN with their caseload
    # the head of the waitlist with the arriving referral in its place, as many as there
    # are free places
    waiting: list[Placement]
    held: bool  # events about it are held (``services/runtime/early.py``)


class Roster:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def lock(self, pcn: str) -> None:
        """Every decision in a PCN is taken under its row lock: concurrent triage
        processes place its referrals one at a time and never exceed a capacity. One
        statement inserts the PCN's row if missing, else locks it (an ``ON CONFLICT DO
        UPDATE`` locks the row it conflicts with, as ``FOR UPDATE`` would, even where its
        ``WHERE`` then updates nothing: the row is not rewritten)."""
        await self.conn.execute(
            "INSERT INTO pcn (pcn) VALUES ($1)"
            " ON CONFLICT (pcn) DO UPDATE SET pcn = excluded.pcn WHERE false",
            pcn,
        )

    async def lock_many(self, pcns: list[str]) -> None:
        """``lock`` for several PCNs, in one statement, in order."""
        await self.conn.execute(
            "INSERT INTO pcn (pcn) SELECT p FROM unnest($1::text[]) AS p ORDER BY p"
            " ON CONFLICT (pcn) DO UPDATE SET pcn = excluded.pcn WHERE false",
            sorted(set(pcns)),
        )

    async def loads(self, pcn: str) -> list[WorkerLoad]:
        """Every active worker of the PCN with their caseload."""
        rows = await self.conn.fetch(_LOADS, pcn)
        return [
            WorkerLoad(r["link_worker_id"], r["capacity"], r["active"], r["registered_at"])
            for r in rows
        ]

    async def register(self, pcn: str, worker_id: str, capacity: int, at: datetime) -> bool:
        """Add a worker (or bring one back), or update their capacity; a later change wins.
        False if this registration is older than the one kept (nothing changed)."""
        changed = await self.conn.fetchval(
            "INSERT INTO link_worker (link_worker_id, pcn, capacity, registered_at)"
            " VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (pcn, link_worker_id) DO UPDATE SET capacity = excluded.capacity,"
            " registered_at = excluded.registered_at, active = true, updated_at = now()"
            " WHERE link_worker.registered_at <= excluded.registered_at RETURNING 1",
            worker_id,
            pcn,
            capacity,
            at,
        )
        return changed is not None

    async def set_capacity(self, pcn: str, worker_id: str, capacity: int) -> bool:
        """False if the worker is not on the PCN's roster."""
        changed = await self.conn.fetchval(
            "UPDATE link_worker SET capacity = $3, updated_at = now()"
            " WHERE pcn = $1 AND link_worker_id = $2 AND active RETURNING 1",
            pcn,
            worker_id,
            capacity,
        )
        return changed is not None

    async def leave(self, pcn: str, worker_id: str) -> bool:
        """False if the worker is not on the PCN's roster."""
        changed = await self.conn.fetchval(
            "UPDATE link_worker SET active = false, capacity = 0, updated_at = now()"
            " WHERE pcn = $1 AND link_worker_id = $2 AND active RETURNING 1",
            pcn,
            worker_id,
        )
        return changed is not None


class Waitlist:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def placing(self, pcn: str) -> tuple[list[WorkerLoad], list[Placement]]:
        """Every active worker of the PCN with their caseload (``Roster.loads``), and as
        many of the head of its waitlist, in order, as they have free places between them
        (``domain.free_places``): what placing from the waitlist needs, in one statement."""
        row = await self.conn.fetchrow(
            f"WITH loads AS ({_LOADS})"
            f" SELECT ARRAY(SELECT row({_LOAD}) FROM loads) AS workers,"
            f" ARRAY(SELECT row({_PLACEMENT}) FROM referral"
            f"   WHERE pcn = $1 AND status = 'waiting' {_WAITLIST_ORDER} LIMIT {_ROOM}) AS waiting",
            pcn,
        )
        return _loads(row["workers"]), [_placement_of(w) for w in row["waiting"]]


class Referrals:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def add(
        self,
        referral_id: uuid.UUID,
        *,
        pcn: str,
        practice: str,
        needs: list[str],
        pathway: str,
        accepted_at: datetime,
        sender: str,
        person_id: uuid.UUID | None,
        status: str = "waiting",
        episode_referral_id: uuid.UUID | None = None,
        worker_id: str | None = None,
        assigned_at: datetime | None = None,
    ) -> bool:
        """False if the referral is already known."""
        added = await self.conn.fetchval(
            "INSERT INTO referral (referral_id, pcn, registered_practice, needs, pathway,"
            " status, accepted_at, sender, person_id, episode_referral_id, link_worker_id,"
            " assigned_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            " ON CONFLICT (referral_id) DO NOTHING RETURNING 1",
            referral_id,
            pcn,
            practice,
            needs,
            pathway,
            status,
            accepted_at,
            sender,
            person_id,
            episode_referral_id,
            worker_id,
            assigned_at,
        )
        return added is not None

    async def arrival(self, arriving: Placement, person_id: uuid.UUID | None) -> Arrival:
        """Before ``arriving`` (not saved yet, waiting) is added, in one statement: the
        person's open referral in its PCN (waiting or assigned), if any; the PCN's workers
        with their caseloads; the head of its waitlist as it would be with ``arriving`` on
        it, as many as the workers have free places (``Waitlist.placing``); and whether
        events about it are held. The caller holds the referral id's lock
        (``UnitOfWork.serialise``), under which alone events about it are held, and the
        PCN's."""
        row = await self.conn.fetchrow(
            f"WITH loads AS ({_LOADS}),"
            f" head AS (SELECT {_PLACEMENT}, priority FROM referral"
            f"   WHERE pcn = $1 AND status = 'waiting' {_WAITLIST_ORDER} LIMIT {_ROOM})"
            f" SELECT ARRAY(SELECT row({_LOAD}) FROM loads) AS workers,"
            f" ARRAY(SELECT row({_PLACEMENT}) FROM (SELECT * FROM head UNION ALL"
            "   SELECT $2::uuid, NULL, NULL, NULL, NULL, 'waiting', NULL, NULL, $3::timestamptz, 0)"
            f"   AS w {_WAITLIST_ORDER} LIMIT {_ROOM}) AS waiting,"
            f" (SELECT row({_PLACEMENT}) FROM referral WHERE pcn = $1 AND person_id = $4"
            "   AND status IN ('waiting', 'assigned') ORDER BY accepted_at LIMIT 1) AS episode,"
            " EXISTS (SELECT 1 FROM early_event WHERE referral_id = $2) AS held",
            arriving.pcn,
            arriving.referral_id,
            arriving.received_at,
            person_id,
        )
        return Arrival(
            episode=_placement_of(row["episode"]) if row["episode"] else None,
            workers=_loads(row["workers"]),
            waiting=[
                arriving if w[0] == arriving.referral_id else _placement_of(w)
                for w in row["waiting"]
            ],
            held=row["held"],
        )

    async def get(self, referral_id: uuid.UUID, *, for_update: bool = False) -> Placement | None:
        row = await self.conn.fetchrow(
            f"SELECT {_PLACEMENT} FROM referral WHERE referral_id = $1"
            + (" FOR UPDATE" if for_update else ""),
            referral_id,
        )
        return _placement(row) if row else None

    async def assign(self, referral_id: uuid.UUID, worker_id: str, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE referral SET status = 'assigned', link_worker_id = $2, assigned_at = $3,"
            " priority = 0 WHERE referral_id = $1",
            referral_id,
            worker_id,
            at,
        )

    async def to_waitlist_head(self, referral_id: uuid.UUID) -> None:
        await self.conn.execute(
            "UPDATE referral SET status = 'waiting', link_worker_id = NULL, priority = 1"
            " WHERE referral_id = $1",
            referral_id,
        )

    async def assigned_to(self, pcn: str, worker_id: str) -> list[Placement]:
        rows = await self.conn.fetch(
            f"SELECT {_PLACEMENT} FROM referral WHERE pcn = $1 AND link_worker_id = $2"
            " AND status = 'assigned' ORDER BY assigned_at, referral_id",
            pcn,
            worker_id,
        )
        return [_placement(r) for r in rows]

    async def end(self, referral_id: uuid.UUID, status: str, at: datetime, reason: str) -> None:
        """Close or withdraw a referral, and the referrals that joined its episode."""
        await self.conn.execute(
            "UPDATE referral SET status = $2, closed_at = $3, close_reason = $4"
            " WHERE referral_id = $1 OR (episode_referral_id = $1 AND status = 'joined')",
            referral_id,
            status,
            at,
            reason,
        )


class TriageStore:
    def __init__(self, conn: asyncpg.Connection):
        self.roster = Roster(conn)
        self.waitlist = Waitlist(conn)
        self.referrals = Referrals(conn)
        self.subjects = Subjects(conn)


_PLACEMENT = (
    "referral_id, pcn, registered_practice, needs, pathway, status, link_worker_id, sender,"
    " accepted_at"
)
_PLACEMENT_COLUMNS = tuple(c.strip() for c in _PLACEMENT.split(","))
_LOAD = "link_worker_id, capacity, active, registered_at"  # WorkerLoad's fields, in order
_LOADS = (
    "SELECT w.link_worker_id, w.capacity, w.registered_at,"
    " (SELECT count(*) FROM referral r WHERE r.pcn = w.pcn"
    "   AND r.link_worker_id = w.link_worker_id AND r.status = 'assigned') AS active"
    " FROM link_worker w WHERE w.pcn = $1 AND w.active"
)
# the waitlist's order (``domain``: people whose worker left first, then by receipt)
_WAITLIST_ORDER = "ORDER BY priority DESC, accepted_at, referral_id"
# the free places of the workers in ``loads`` (``WorkerLoad.free``, summed)
_ROOM = "(SELECT coalesce(sum(greatest(capacity - active, 0)), 0) FROM loads)"


def _loads(rows: list[tuple[Any, ...]]) -> list[WorkerLoad]:
    """``WorkerLoad``s from ``row(_LOAD)`` records."""
    return [WorkerLoad(*r) for r in rows]


def _placement_of(values: tuple[Any, ...]) -> Placement:
    """A ``Placement`` from a ``row(_PLACEMENT)`` record (a tuple, in that order)."""
    return _placement(dict(zip(_PLACEMENT_COLUMNS, values, strict=True)))


def _placement(row: Mapping[str, Any]) -> Placement:
    return Placement(
        row["referral_id"],
        row["pcn"],
        row["registered_practice"],
        list(row["needs"] or []),
        row["pathway"],
        row["status"],
        row["link_worker_id"],
        row["sender"],
        row["accepted_at"],
    )


async def pcn_figures(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Waitlist, caseload and capacity per PCN (for the metrics gauges)."""
    return await conn.fetch(
        "SELECT p.pcn,"
        " (SELECT count(*) FROM referral r WHERE r.pcn = p.pcn AND r.status = 'waiting') AS w,"
        " (SELECT count(*) FROM referral r WHERE r.pcn = p.pcn AND r.status = 'assigned') AS a,"
        " (SELECT coalesce(sum(capacity), 0) FROM link_worker l WHERE l.pcn = p.pcn) AS c"
        " FROM pcn p"
    )


class Subjects:
    """What triage holds about one person's referrals, for their rights (``rights``)."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def referrals(self, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT referral_id, pcn, registered_practice, needs, pathway, status,"
            " link_worker_id, accepted_at, assigned_at, closed_at, close_reason FROM referral"
            " WHERE referral_id = ANY($1::uuid[])",
            ids,
        )
        return [dict(r) for r in rows]
