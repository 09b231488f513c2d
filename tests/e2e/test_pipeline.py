"""The issue's acceptance path: four separate processes, plain aio-pika in and out."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import aio_pika
import asyncpg
import pytest

from ..support import Tap, inbound, publish, submission, worker

pytestmark = pytest.mark.e2e


async def test_referral_flows_from_agency_to_gp_record(settings, stack):
    async with Tap(settings) as tap:
        await publish(settings, worker("U23456", "lw-e2e-1", 1))
        await asyncio.sleep(0.5)
        police = submission(org="POLICE-WM", agency_type="police", pcn="U23456")
        await publish(settings, police)
        [acc] = await tap.wait_count("referral.accepted.v1", 1)
        rid = acc["data"]["referral_id"]
        [asg] = await tap.wait_count("referral.assigned.v1", 1, referral_id=rid)
        assert tap.keys("referral.accepted.v1") == ["referral.accepted.v1.POLICE-WM"]
        assert "referral.assigned.v1.U23456" in tap.keys("referral.assigned.v1")
        assert asg["data"]["link_worker_id"] == "lw-e2e-1"
        chain = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{police['source']}#{police['id']}"))
        assert acc["correlationid"] == chain == asg["correlationid"]

        # the worker is now full: the next referral waits, and its person is told so
        second = submission(org="A81001", pcn="U23456")
        await publish(settings, second)
        [wl] = await tap.wait_count("referral.waitlisted.v1", 1)
        assert tap.keys("referral.waitlisted.v1") == ["referral.waitlisted.v1.U23456"]
        # before its place frees up: a waitlisting notify only sees after the assignment
        # is stale and, rightly, tells nobody
        await tap.wait_count("referral.status.v1", 1, status="waitlisted")

        await publish(
            settings,
            inbound(
                "contact.recorded.v1",
                "U23456",
                referral_id=rid,
                link_worker_id="lw-e2e-1",
                outcome="engaged",
            ),
        )
        [wb] = await tap.wait_count("gp.writeback.v1", 1)
        assert wb["data"]["codes"][0] == {
            "system": "http://snomed.info/sct",
            "code": "871731000000106",
            "display": "Referral to social prescribing service",
        }
        assert tap.keys("gp.writeback.v1") == [
            f"gp.writeback.v1.{police['data']['registered_practice']}"
        ]
        assert wb["data"]["summary"]

        # the episode closes: its place goes to the head of the waitlist
        await publish(
            settings, inbound("referral.closed.v1", "U23456", referral_id=rid, reason="completed")
        )
        [moved] = await tap.wait_count(
            "referral.assigned.v1", 1, referral_id=wl["data"]["referral_id"]
        )
        assert moved["data"]["from_waitlist"] is True
        statuses = await tap.wait_count("referral.status.v1", 7)
        first = [s["data"]["status"] for s in statuses if s["data"]["referral_id"] == rid]
        assert first == ["accepted", "assigned", "in_progress", "closed"]
        assert {s["data"]["status"] for s in statuses} == {
            "accepted",
            "assigned",
            "waitlisted",
            "in_progress",
            "closed",
        }

    # people were told, and a waitlisted person was never given a time
    spool = stack.log_dir / "spool" / settings.namespace
    for _ in range(50):
        if (spool / "sms.jsonl").exists() and len(
            (spool / "sms.jsonl").read_text().splitlines()
        ) >= 3:
            break
        await asyncio.sleep(0.1)
    person = [json.loads(line) for line in (spool / "sms.jsonl").read_text().splitlines()]
    waiting = [m for m in person if "waiting list" in m["body"]]
    assert len(waiting) == 1
    assert not re.search(r"\b(minutes?|hours?|days?|weeks?|months?|years?)\b", waiting[0]["body"])
    team = [json.loads(line) for line in (spool / "email.jsonl").read_text().splitlines()]
    assert {m["to"] for m in team} == {"social-prescribing-U23456@linkwell.invalid"}

    # every disclosure of the first referral is on the audit trail, once, chained
    from services.audit import domain
    from services.audit.store import chain, query

    wanted = {
        ("intake", "answer", "sender", "POLICE-WM"),
        ("triage", "assignment", "team", "U23456"),
        ("notify", "status", "referrer", "POLICE-WM"),
        ("notify", "notification", "team", "U23456"),
        ("outcomes", "gp_writeback", "gp", police["data"]["registered_practice"]),
    }
    conn = await asyncpg.connect(settings.database_url)
    try:
        schema = settings.names.schema("audit")
        for _ in range(100):
            records = await query(conn, schema, referral=uuid.UUID(rid))
            seen = {(r.by_service, r.action, r.recipient_kind, r.recipient_org) for r in records}
            if wanted <= seen and sum(r.action == "status" for r in records) >= 4:
                break
            await asyncio.sleep(0.1)
        assert wanted <= seen, wanted - seen
        told = [r.detail["event_id"] for r in records if r.action == "status"]
        assert len(told) == len(set(told)) == 4  # accepted, assigned, in_progress, closed
        events = [r.event_id for r in records]
        assert len(events) == len(set(events))
        assert domain.verify(await chain(conn, schema))[1] is None
    finally:
        await conn.close()


async def test_bad_input_is_answered_and_the_pipeline_keeps_going(settings, stack):
    async with Tap(settings) as tap:
        await publish(settings, worker("U34567", "lw-e2e-2", 10))
        no_consent = submission(org="JCP-B12", agency_type="job_centre", pcn="U34567")
        no_consent["data"]["consent"]["given"] = False
        bad_check = submission(org="VCSE-77", agency_type="vcse", pcn="U34567")
        bad_check["data"]["person"]["nhs_number"] = "9990000019"
        await publish(settings, no_consent)
        await publish(settings, bad_check)
        await publish(settings, b"<referral>not json</referral>", "referral.submitted.v1")
        good = submission(org="SELF-WEB", agency_type="self_referral", pcn="U34567")
        await publish(settings, good)
        await publish(settings, good)  # same event again
        await publish(settings, dict(good, id=str(uuid.uuid4())))  # resent with a new id

        rejected = await tap.wait_count("referral.rejected.v1", 2)
        codes = {r["data"]["sender"]: [x["code"] for x in r["data"]["reasons"]] for r in rejected}
        assert codes == {"JCP-B12": ["consent_missing"], "VCSE-77": ["nhs_number_invalid"]}
        assert sorted(tap.keys("referral.rejected.v1")) == [
            "referral.rejected.v1.JCP-B12",
            "referral.rejected.v1.VCSE-77",
        ]
        await tap.wait_count("referral.assigned.v1", 1)
        await asyncio.sleep(1.0)
        assert len(tap.events("referral.accepted.v1")) == 1  # one referral, not three

    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        dlq = await channel.get_queue(settings.names.dead_letter_queue("intake"), ensure=False)
        reasons = []
        while (message := await dlq.get(no_ack=True, fail=False)) is not None:
            reasons.append(message.headers["x-linkwell-reason"])
    assert sorted(reasons) == ["not_json", "schema_invalid"]
