"""Triage rules, free of I/O.

Assignment rule: a referral goes to the link worker in its PCN whose caseload is
proportionally lightest (active / capacity), so part-time workers with smaller
capacity fill at the same rate as full-time ones; ties go to the worker with more free
places, then the one registered longest, then by id. A worker at capacity is never
given more.

Waitlist order: people whose link worker left come first (they were already being
supported), then first come, first served by the time intake accepted the referral (ties
by referral id). Whenever a place frees up or a worker joins, the head of the PCN's
waitlist is placed first.

A capacity lowered below a worker's caseload drops nobody: the worker keeps their people
and takes nobody new until below it. A worker who leaves has each of their people moved
to a colleague with room (by the same rule), or to the head of the waitlist.

A person already supported in the PCN (an open referral, waiting or assigned) who is
referred again takes no second place: the new referral joins the open episode. A
referral without an NHS number is nobody's second referral and nobody joins it: with
nothing to say who the person is, it is always a person of its own (``matchable``).

People are told they are on a waiting list, never given a waiting time, so the waitlist
exposes no position or estimate.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction

from contracts.enums import RejectionCode


@dataclass(frozen=True, slots=True)
class WorkerLoad:
    link_worker_id: str
    capacity: int
    active: int
    registered_at: datetime

    @property
    def free(self) -> int:
        return max(self.capacity - self.active, 0)


def _rank(worker: WorkerLoad) -> tuple[Fraction, int, datetime, str]:
    return (
        Fraction(worker.active, worker.capacity),
        -worker.free,
        worker.registered_at,
        worker.link_worker_id,
    )


def choose_worker(workers: Iterable[WorkerLoad]) -> WorkerLoad | None:
    candidates = [w for w in workers if w.free > 0]
    return min(candidates, key=_rank) if candidates else None


def plan(workers: Iterable[WorkerLoad], waiting: Sequence[str]) -> list[tuple[str, str]]:
    """Place waiting referrals (already in waitlist order) while anyone has room.
    Returns (referral_id, link_worker_id) pairs, in order."""
    loads = {w.link_worker_id: w for w in workers}
    placed: list[tuple[str, str]] = []
    for referral_id in waiting:
        worker = choose_worker(loads.values())
        if worker is None:
            break
        placed.append((referral_id, worker.link_worker_id))
        loads[worker.link_worker_id] = replace(worker, active=worker.active + 1)
    return placed


def free_places(workers: Iterable[WorkerLoad]) -> int:
    return sum(w.free for w in workers)


def rehome(workers: Iterable[WorkerLoad], people: Sequence[str]) -> list[tuple[str, str | None]]:
    """Where the people of a worker who leaves go (``workers`` are the colleagues who
    stay): each to the colleague the assignment rule picks while anyone has room, the rest
    to the head of the waitlist (None). Nobody is dropped; everybody gets a decision."""
    placed: list[tuple[str, str | None]] = [*plan(workers, people)]
    return placed + [(referral_id, None) for referral_id in people[len(placed) :]]


def transfer_refusal(workers: Iterable[WorkerLoad], to: str) -> RejectionCode | None:
    """Why a referral may not move to worker ``to``: unknown, or no room; None if it may."""
    target = next((w for w in workers if w.link_worker_id == to), None)
    if target is None:
        return RejectionCode.UNKNOWN_LINK_WORKER
    if target.free == 0:
        return RejectionCode.AT_CAPACITY
    return None


def matchable(person_id: uuid.UUID | None, nhs_number_known: bool) -> uuid.UUID | None:
    """The person id a referral may be joined by, or join on: none without an NHS number."""
    return person_id if nhs_number_known else None
