"""kill -9 services mid-stream: every referral still reaches exactly one outcome and no
GP writeback is sent twice."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from ..support import Tap, inbound, publish, submission, worker

pytestmark = pytest.mark.e2e

N = 60
PCNS = ("U41001", "U41002")


async def test_kill_9_mid_stream_loses_nothing_and_duplicates_nothing(settings, stack):
    async with Tap(settings) as tap:
        for pcn in PCNS:
            await publish(settings, worker(pcn, f"lw-{pcn}", 20))  # 40 places for 60
        await asyncio.sleep(0.5)
        refs = [submission(pcn=PCNS[i % 2]) for i in range(N)]

        async def stream() -> None:
            for i, ref in enumerate(refs):
                await publish(settings, ref)
                if i % 3 == 0:
                    await publish(settings, ref)  # and some redeliveries
                await asyncio.sleep(0.01)

        async def havoc() -> None:
            for name in ("triage", "intake", "outcomes", "notify", "triage"):
                await asyncio.sleep(0.25)
                stack.kill(name)
                await asyncio.sleep(0.2)
                stack.start(name)

        await asyncio.gather(stream(), havoc())
        await stack.wait_ready()

        def placed(t: Tap) -> int:
            ids = {e["data"]["referral_id"] for e in t.events("referral.assigned.v1")}
            ids |= {e["data"]["referral_id"] for e in t.events("referral.waitlisted.v1")}
            return len(ids)

        await tap.wait_for(lambda t: placed(t) >= N, 90, f"{N} referrals placed")
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

        async def more_havoc() -> None:
            await asyncio.sleep(0.2)
            stack.kill("outcomes")
            await asyncio.sleep(0.3)
            stack.start("outcomes")

        await asyncio.gather(contacts(), more_havoc())
        await tap.wait_for(
            lambda t: (
                len({w["data"]["referral_id"] for w in t.events("gp.writeback.v1")})
                >= len(assigned)
            ),
            90,
            "a writeback per assigned referral",
        )
        await asyncio.sleep(1.5)  # anything sent twice would have arrived by now

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
    assert len(assignments) == 40 and len(waitlistings) == 20
    assert len(set(assignments) | set(waitlistings)) == N

    workers = {
        e["data"]["referral_id"]: e["data"]["link_worker_id"]
        for e in tap.events("referral.assigned.v1")
    }
    per_worker: dict[str, int] = defaultdict(int)
    for worker_id in workers.values():
        per_worker[worker_id] += 1
    assert all(count <= 20 for count in per_worker.values()), per_worker

    writebacks = distinct("gp.writeback.v1", lambda d: (d["referral_id"], d["fact"]))
    assert len(writebacks) == len(assigned)
    assert all(len(ids) == 1 for ids in writebacks.values()), "a GP writeback was sent twice"
