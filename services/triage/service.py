"""triage's handlers. Every decision in a PCN happens under that PCN's row lock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from contracts import CloudEvent
from contracts.events import (
    LinkWorkerRegistered,
    ReferralAccepted,
    ReferralAssigned,
    ReferralClosed,
    ReferralWaitlisted,
)
from services.runtime import metrics
from services.runtime.errors import require_pcn
from services.runtime.logs import get_logger
from services.runtime.service import ServiceDef, routes
from services.runtime.uow import UnitOfWork

from .domain import WorkerLoad, free_places, plan

log = get_logger(__name__)


async def lock_pcn(conn: asyncpg.Connection, pcn: str) -> None:
    await conn.execute("INSERT INTO pcn (pcn) VALUES ($1) ON CONFLICT DO NOTHING", pcn)
    await conn.execute("SELECT 1 FROM pcn WHERE pcn = $1 FOR UPDATE", pcn)


async def worker_loads(conn: asyncpg.Connection, pcn: str) -> list[WorkerLoad]:
    rows = await conn.fetch(
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


async def place_waiting(uow: UnitOfWork, pcn: str, arriving: str | None = None) -> set[str]:
    """Give free places to the head of the PCN's waitlist; returns the referrals placed.
    ``arriving`` is the referral this transaction has just added, if any: placing it is
    not placing from the waitlist. Caller holds the PCN lock."""
    workers = await worker_loads(uow.conn, pcn)
    room = free_places(workers)
    if room == 0:
        return set()
    waiting = await uow.conn.fetch(
        "SELECT referral_id, registered_practice, needs, pathway, accepted_at FROM referral"
        " WHERE pcn = $1 AND status = 'waiting' ORDER BY accepted_at, referral_id LIMIT $2",
        pcn,
        room,
    )
    by_id = {str(r["referral_id"]): r for r in waiting}
    now = datetime.now(UTC)
    placed = set()
    for referral_id, worker_id in plan(workers, list(by_id)):
        row = by_id[referral_id]
        await uow.conn.execute(
            "UPDATE referral SET status = 'assigned', link_worker_id = $2, assigned_at = $3"
            " WHERE referral_id = $1 AND status = 'waiting'",
            row["referral_id"],
            worker_id,
            now,
        )
        await uow.emit(
            ReferralAssigned(
                referral_id=row["referral_id"],
                pcn=pcn,
                registered_practice=row["registered_practice"],
                link_worker_id=worker_id,
                needs=row["needs"],
                pathway=row["pathway"],
                from_waitlist=referral_id != arriving,
                assigned_at=now,
            )
        )
        placed.add(referral_id)
        log.info("referral_assigned", referral_id=referral_id, link_worker_id=worker_id)
    return placed


async def on_accepted(uow: UnitOfWork, event: CloudEvent[Any], referral: ReferralAccepted) -> None:
    await lock_pcn(uow.conn, referral.pcn)
    inserted = await uow.conn.fetchval(
        "INSERT INTO referral (referral_id, pcn, registered_practice, needs, pathway, status,"
        " accepted_at) VALUES ($1, $2, $3, $4, $5, 'waiting', $6)"
        " ON CONFLICT (referral_id) DO NOTHING RETURNING 1",
        referral.referral_id,
        referral.pcn,
        referral.registered_practice,
        [n.value for n in referral.needs],
        referral.pathway.value,
        referral.accepted_at,
    )
    if not inserted:
        log.info("already_placed_or_closed")
        return
    placed = await place_waiting(uow, referral.pcn, arriving=str(referral.referral_id))
    if str(referral.referral_id) not in placed:
        await uow.emit(
            ReferralWaitlisted(
                referral_id=referral.referral_id,
                pcn=referral.pcn,
                registered_practice=referral.registered_practice,
                waitlisted_at=datetime.now(UTC),
            )
        )
        log.info("referral_waitlisted")


async def on_registered(
    uow: UnitOfWork, event: CloudEvent[Any], worker: LinkWorkerRegistered
) -> None:
    require_pcn(event.sender_org, worker.pcn, "the roster")
    await lock_pcn(uow.conn, worker.pcn)
    await uow.conn.execute(
        "INSERT INTO link_worker (link_worker_id, pcn, capacity, registered_at)"
        " VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (pcn, link_worker_id) DO UPDATE SET"
        " capacity = excluded.capacity, registered_at = excluded.registered_at, updated_at = now()"
        " WHERE link_worker.registered_at <= excluded.registered_at",
        worker.link_worker_id,
        worker.pcn,
        worker.capacity,
        worker.registered_at,
    )
    placed = await place_waiting(uow, worker.pcn)
    log.info(
        "link_worker_registered",
        link_worker_id=worker.link_worker_id,
        capacity=worker.capacity,
        placed_from_waitlist=len(placed),
    )


async def on_closed(uow: UnitOfWork, event: CloudEvent[Any], closed: ReferralClosed) -> None:
    tombstone = await uow.conn.fetchval(
        "INSERT INTO referral (referral_id, status, closed_at, close_reason)"
        " VALUES ($1, 'closed', $2, $3) ON CONFLICT (referral_id) DO NOTHING RETURNING 1",
        closed.referral_id,
        closed.closed_at,
        closed.reason.value,
    )
    if tombstone:
        log.info("closed_before_placed")
        return
    pcn = await uow.conn.fetchval(
        "SELECT pcn FROM referral WHERE referral_id = $1", closed.referral_id
    )
    if pcn is None:
        return
    require_pcn(event.sender_org, pcn, "this referral")
    await lock_pcn(uow.conn, pcn)
    previous = await uow.conn.fetchval(
        "SELECT status FROM referral WHERE referral_id = $1 FOR UPDATE", closed.referral_id
    )
    if previous == "closed":
        return
    await uow.conn.execute(
        "UPDATE referral SET status = 'closed', closed_at = $2, close_reason = $3"
        " WHERE referral_id = $1",
        closed.referral_id,
        closed.closed_at,
        closed.reason.value,
    )
    log.info("referral_closed", was=previous)
    if previous == "assigned":
        await place_waiting(uow, pcn)


def observe(events: list[CloudEvent[Any]]) -> None:
    """Per-PCN counters, once the placements are committed."""
    for event in events:
        if event.type == ReferralAssigned.TYPE:
            metrics.ASSIGNMENTS.labels(event.data.pcn).inc()
        elif event.type == ReferralWaitlisted.TYPE:
            metrics.WAITLISTINGS.labels(event.data.pcn).inc()


async def state_gauges(conn: asyncpg.Connection) -> None:
    """Waitlist, caseload and capacity per PCN, from the shared state all replicas use."""
    rows = await conn.fetch(
        "SELECT p.pcn,"
        " (SELECT count(*) FROM referral r WHERE r.pcn = p.pcn AND r.status = 'waiting') AS w,"
        " (SELECT count(*) FROM referral r WHERE r.pcn = p.pcn AND r.status = 'assigned') AS a,"
        " (SELECT coalesce(sum(capacity), 0) FROM link_worker l WHERE l.pcn = p.pcn) AS c"
        " FROM pcn p"
    )
    metrics.set_per_label(metrics.WAITLIST, ((r["pcn"], r["w"]) for r in rows))
    metrics.set_per_label(metrics.CASELOAD, ((r["pcn"], r["a"]) for r in rows))
    metrics.set_per_label(metrics.CAPACITY, ((r["pcn"], r["c"]) for r in rows))


SERVICE = ServiceDef(
    name="triage",
    directory=Path(__file__).parent,
    description="Places accepted referrals with a link worker who has room, or waitlists them.",
    routes=routes(
        (ReferralAccepted, on_accepted),
        (LinkWorkerRegistered, on_registered),
        (ReferralClosed, on_closed),
    ),
    observe=observe,
    state_gauges=state_gauges,
)
