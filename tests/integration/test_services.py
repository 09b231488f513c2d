"""triage, outcomes and notify on the real broker and database, fed the events their
upstream services would emit."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg
import pytest

from services.notify.app import SERVICE as NOTIFY
from services.notify.settings import NotifySettings
from services.outcomes.app import SERVICE as OUTCOMES
from services.runtime.runner import Runner
from services.triage.app import SERVICE as TRIAGE

from ..support import Tap, example, inbound, publish, worker

pytestmark = pytest.mark.integration


def accepted(pcn: str = "U12345", at: datetime | None = None, **data) -> dict:
    """A referral.accepted.v1 as intake would emit it."""
    env = example("referral.accepted.v1")
    rid = str(uuid.uuid4())
    env["id"] = str(uuid.uuid4())
    env["subject"] = rid
    env["data"].update(
        referral_id=rid,
        pcn=pcn,
        sender_reference=f"R-{rid[:8]}",
        accepted_at=(at or datetime.now(UTC)).isoformat(),
        **data,
    )
    return env


async def emit(settings, envelope: dict) -> None:
    """Publish to <ns>.events as a Linkwell service would."""
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(settings.names.events, ensure=False)
        key = f"{envelope['type']}.{envelope['data'].get('pcn') or envelope['data'].get('sender')}"
        await exchange.publish(
            aio_pika.Message(
                json.dumps(envelope).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            ),
            routing_key=key,
        )


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


async def test_new_capacity_takes_from_the_head_of_the_waitlist(settings):
    [runner] = await started(TRIAGE, settings)
    try:
        async with Tap(settings) as tap:
            base = datetime.now(UTC)
            first, second = accepted(at=base), accepted(at=base + timedelta(seconds=1))
            await emit(settings, second)
            await emit(settings, first)
            await tap.wait_count("referral.waitlisted.v1", 2)
            await publish(settings, worker("U12345", "lw-new", 1))
            [assigned] = await tap.wait_count("referral.assigned.v1", 1)
            assert assigned["data"]["referral_id"] == first["data"]["referral_id"]
            # a closure that arrives before its referral: the referral is never placed
            early = accepted()
            await publish(
                settings,
                inbound(
                    "referral.closed.v1",
                    "U12345",
                    referral_id=early["data"]["referral_id"],
                    reason="moved_away",
                ),
            )
            await asyncio.sleep(0.5)
            await emit(settings, early)
            await asyncio.sleep(1.0)
            assert not tap.events(
                "referral.waitlisted.v1", referral_id=early["data"]["referral_id"]
            )
    finally:
        await runner.stop()


async def test_outcomes_writes_back_once_whatever_the_order(settings):
    [runner] = await started(OUTCOMES, settings)
    try:
        async with Tap(settings) as tap:
            ref = accepted(agency_type="self_referral")
            rid = ref["data"]["referral_id"]
            first_contact = inbound(
                "contact.recorded.v1", "U12345", referral_id=rid, outcome="engaged"
            )
            await publish(settings, first_contact)  # before outcomes knows the referral
            await asyncio.sleep(0.5)
            assert not tap.events("gp.writeback.v1")
            await emit(settings, ref)
            [wb] = await tap.wait_count("gp.writeback.v1", 1)
            assert [c["code"] for c in wb["data"]["codes"]] == ["871731000000106", "306098008"]
            assert tap.keys("gp.writeback.v1") == ["gp.writeback.v1.A81001"]
            assert wb["data"]["nhs_number"] == ref["data"]["nhs_number"]

            await publish(settings, first_contact)  # redelivered
            await publish(
                settings,
                inbound("contact.recorded.v1", "U12345", referral_id=rid, outcome="declined"),
            )  # later: decides nothing
            await publish(
                settings,
                inbound("referral.closed.v1", "U12345", referral_id=rid, reason="completed"),
            )
            await tap.wait_count("gp.writeback.v1", 2)
            await asyncio.sleep(0.5)
        facts = Counter(w["data"]["fact"] for w in tap.events("gp.writeback.v1"))
        assert facts == {"accepted": 1, "closed": 1}
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
            assigned = example("referral.assigned.v1")
            assigned["id"] = str(uuid.uuid4())
            assigned["data"]["referral_id"] = rid
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
