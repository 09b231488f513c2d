"""Crashes mid-stream: every referral still reaches exactly one outcome, no capacity is
exceeded, and no GP writeback is sent twice.

Two ways to crash: ``kill -9`` at arbitrary moments, and failpoints that kill a process at
exact boundaries (after the inbox claim, before commit, after commit but before the ack,
after publishing the outbox but before marking it, after parking a retry)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from services.runtime.failpoints import POINTS

from ..stack import ProcessStack
from ..support import Tap, inbound, publish, submission, worker

pytestmark = pytest.mark.e2e

N = 60
PCNS = ("U41001", "U41002")
CAPACITY = 20  # per PCN: 40 places for 60 referrals

Disrupt = Callable[[], Awaitable[None]]


async def nothing() -> None:
    return None


async def run_scenario(
    settings, stack: ProcessStack, during_referrals: Disrupt, during_contacts: Disrupt
) -> Tap:
    async with Tap(settings) as tap:
        for pcn in PCNS:
            await publish(settings, worker(pcn, f"lw-{pcn}", CAPACITY))
        await asyncio.sleep(0.5)
        refs = [submission(pcn=PCNS[i % 2]) for i in range(N)]

        async def stream() -> None:
            for i, ref in enumerate(refs):
                await publish(settings, ref)
                if i % 3 == 0:
                    await publish(settings, ref)  # and some redeliveries
                await asyncio.sleep(0.01)

        await asyncio.gather(stream(), during_referrals())

        def placed(t: Tap) -> int:
            ids = {e["data"]["referral_id"] for e in t.events("referral.assigned.v1")}
            ids |= {e["data"]["referral_id"] for e in t.events("referral.waitlisted.v1")}
            return len(ids)

        await tap.wait_for(lambda t: placed(t) >= N, 120, f"{N} referrals placed")
        assigned = {e["data"]["referral_id"]: e for e in tap.events("referral.assigned.v1")}

        async def contacts() -> None:
            for rid, event in assigned.items():
                await publish(
                    settings,
                    inbound(
                        "contact.recorded.v1",
                        event["data"]["pcn"],
                        referral_id=rid,
                        outcome="engaged",
                    ),
                )
                await asyncio.sleep(0.01)

        await asyncio.gather(contacts(), during_contacts())
        await tap.wait_for(
            lambda t: (
                len({w["data"]["referral_id"] for w in t.events("gp.writeback.v1")})
                >= len(assigned)
            ),
            120,
            "a writeback per assigned referral",
        )
        await asyncio.sleep(1.5)  # anything sent twice would have arrived by now
    return tap


def assert_exactly_once(tap: Tap) -> None:
    def distinct(event_type: str, key) -> dict:
        seen: dict = defaultdict(set)
        for e in tap.events(event_type):
            seen[key(e["data"])].add(e["id"])  # a re-published event keeps its id
        return seen

    accepted = distinct("referral.accepted.v1", lambda d: d["sender_reference"])
    assert len(accepted) == N
    assert all(len(ids) == 1 for ids in accepted.values()), "a referral was accepted twice"

    assignments = distinct("referral.assigned.v1", lambda d: d["referral_id"])
    waitlistings = distinct("referral.waitlisted.v1", lambda d: d["referral_id"])
    assert all(len(ids) == 1 for ids in assignments.values()), "assigned twice"
    assert all(len(ids) == 1 for ids in waitlistings.values()), "waitlisted twice"
    assert len(assignments) == 2 * CAPACITY and len(waitlistings) == N - 2 * CAPACITY
    assert len(set(assignments) | set(waitlistings)) == N

    workers = {
        e["data"]["referral_id"]: e["data"]["link_worker_id"]
        for e in tap.events("referral.assigned.v1")
    }
    per_worker: dict[str, int] = defaultdict(int)
    for worker_id in workers.values():
        per_worker[worker_id] += 1
    assert all(count <= CAPACITY for count in per_worker.values()), per_worker

    writebacks = distinct("gp.writeback.v1", lambda d: (d["referral_id"], d["fact"]))
    assert len(writebacks) == len(assignments)
    assert all(len(ids) == 1 for ids in writebacks.values()), "a GP writeback was sent twice"


async def test_kill_9_mid_stream_loses_nothing_and_duplicates_nothing(settings, stack):
    async def havoc() -> None:
        for name in ("triage", "intake", "outcomes", "notify", "triage"):
            await asyncio.sleep(0.25)
            stack.kill(name)
            await asyncio.sleep(0.2)
            stack.start(name)
        await stack.wait_ready()

    async def more_havoc() -> None:
        await asyncio.sleep(0.2)
        stack.kill("outcomes")
        await asyncio.sleep(0.3)
        stack.start("outcomes")

    tap = await run_scenario(settings, stack, havoc, more_havoc)
    assert_exactly_once(tap)


async def test_crashes_at_every_commit_boundary_lose_nothing(settings, tmp_path: Path):
    stack = ProcessStack(settings, tmp_path)
    stack.env["LINKWELL_FAILPOINTS"] = ",".join(f"{point}=0.02" for point in POINTS)
    await stack.start_all()
    supervisor = asyncio.create_task(stack.supervise())
    try:
        tap = await run_scenario(settings, stack, nothing, nothing)
    finally:
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
        stack.stop_all()
    assert sum(stack.restarts.values()) >= 3, f"too few crashes to mean much: {stack.restarts}"
    assert_exactly_once(tap)
