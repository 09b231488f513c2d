"""triage, outcomes and notify on the real broker and database, fed the events their
upstream services would emit."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.notify.app import SERVICE as NOTIFY
from services.notify.settings import NotifySettings
from services.outcomes.app import SERVICE as OUTCOMES
from services.runtime.runner import Runner
from services.triage.app import SERVICE as TRIAGE

from ..support import Tap, accepted, drain, emit, inbound, internal, publish, worker

pytestmark = pytest.mark.integration


async def started(service, settings, n: int = 1) -> list[Runner]:
    runners = [Runner(service, settings) for _ in range(n)]
    for runner in runners:
        await runner.start()
    return runners


async def test_two_triage_processes_never_exceed_capacity_or_double_assign(settings):
    runners = await started(TRIAGE, settings, n=2)
    try:
        async with Tap(settings) as tap:
            for i in range(3):
                await publish(settings, worker("U12345", f"lw-{i}", 5))
            await asyncio.sleep(0.5)
            base = datetime.now(UTC)
            referrals = [accepted(at=base + timedelta(seconds=i)) for i in range(40)]
            await asyncio.gather(*(emit(settings, r) for r in referrals))
            await tap.wait_for(
                lambda t: (
                    len(t.events("referral.assigned.v1")) + len(t.events("referral.waitlisted.v1"))
                    >= 40
                ),
                30,
                "40 placements",
            )

            assigned = tap.events("referral.assigned.v1")
            assert len(assigned) == 15
            assert len(tap.events("referral.waitlisted.v1")) == 25
            per_referral = Counter(a["data"]["referral_id"] for a in assigned)
            assert max(per_referral.values()) == 1
            per_worker = Counter(a["data"]["link_worker_id"] for a in assigned)
            assert per_worker == {"lw-0": 5, "lw-1": 5, "lw-2": 5}
            assert set(tap.keys("referral.assigned.v1")) == {"referral.assigned.v1.U12345"}

            # Five places free up: the five longest-waiting referrals get them, in order.
            waiting = [
                r["data"]["referral_id"]
                for r in referrals
                if r["data"]["referral_id"] not in per_referral
            ]
            for a in assigned[:5]:
                await publish(
                    settings,
                    inbound(
                        "referral.closed.v1",
                        "U12345",
                        referral_id=a["data"]["referral_id"],
                        reason="completed",
                    ),
                )
            await tap.wait_count("referral.assigned.v1", 20)
            later = tap.events("referral.assigned.v1")[15:]
            assert sorted(a["data"]["referral_id"] for a in later) == sorted(waiting[:5])
            assert all(a["data"]["from_waitlist"] for a in later)
    finally:
        for runner in runners:
            await runner.stop()

    conn = await asyncpg.connect(settings.database_url)
    try:
        schema = settings.names.schema("triage")
        over = await conn.fetchval(
            f'SELECT count(*) FROM "{schema}".link_worker w WHERE w.capacity < '
            f'(SELECT count(*) FROM "{schema}".referral r WHERE r.link_worker_id = w.link_worker_id'
            f" AND r.status = 'assigned')"
        )
        assert over == 0
    finally:
        await conn.close()


async def test_another_pcns_early_contact_is_answered_and_dead_lettered(settings):
    """Held until the referral is known, then refused: the other PCN is told why, the
    contact lands in outcomes' dead-letter queue with the reason, the GP hears nothing."""
    [runner] = await started(OUTCOMES, settings)
    try:
        async with Tap(settings) as tap:
            ref = accepted(pcn="U12345")
            rid = ref["data"]["referral_id"]
            intruder = inbound("contact.recorded.v1", "U99999", referral_id=rid, outcome="engaged")
            await publish(settings, intruder)
            await asyncio.sleep(0.3)
            await emit(settings, ref)
            [refusal] = await tap.wait_count("event.rejected.v1", 1)
            assert tap.keys("event.rejected.v1") == ["event.rejected.v1.U99999"]
            assert refusal["data"]["rejected_event_id"] == intruder["id"]
            assert refusal["data"]["reasons"][0]["code"] == "not_permitted"
            [letter] = await drain(settings, settings.names.dead_letter_queue("outcomes"))
            assert letter.headers["x-linkwell-reason"] == "not_permitted"
            assert json.loads(letter.body)["id"] == intruder["id"]
            await asyncio.sleep(0.5)
            assert not tap.events("gp.writeback.v1")
    finally:
        await runner.stop()


async def test_notify_tells_referrer_team_and_person_by_smtp(settings, unused_tcp_port):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    class Inbox(Sink):
        def __init__(self):
            self.mail: list[tuple[list[str], str]] = []

        async def handle_DATA(self, server, session, envelope):
            self.mail.append((envelope.rcpt_tos, envelope.content.decode()))
            return "250 OK"

    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=unused_tcp_port)
    smtp.start()
    runner = Runner(
        NOTIFY, settings, NotifySettings(notify_channel="smtp", smtp_port=unused_tcp_port)
    )
    await runner.start()
    try:
        async with Tap(settings) as tap:
            ref = accepted(contact={"preferred": "email", "email": "sam@example.org"})
            rid = ref["data"]["referral_id"]
            assigned = internal("referral.assigned.v1", producer="triage", referral_id=rid)
            await emit(settings, assigned)  # before accepted: deferred, then retried
            await asyncio.sleep(0.3)
            await emit(settings, ref)
            statuses = await tap.wait_count("referral.status.v1", 2)
            assert {s["data"]["status"] for s in statuses} == {"accepted", "assigned"}
            assert set(tap.keys("referral.status.v1")) == {"referral.status.v1.A81001"}
            for _ in range(100):
                if len(inbox.mail) >= 2:
                    break
                await asyncio.sleep(0.1)
    finally:
        await runner.stop()
        smtp.stop()
    recipients = sorted(r for rcpts, _ in inbox.mail for r in rcpts)
    assert recipients == ["sam@example.org", "social-prescribing-U12345@linkwell.invalid"]
    team_mail = next(body for rcpts, body in inbox.mail if "U12345" in rcpts[0])
    assert rid in team_mail and "lw-u12345-01" in team_mail
