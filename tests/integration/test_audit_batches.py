"""Audit records travel several to a message (CloudEvents' JSON batch format): the relay
groups what one claim holds, the audit service takes each record as if it came alone
(once, chained), and a batch with one bad record is dead-lettered whole, never in part."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import aio_pika
import pytest

from contracts import BATCH_CONTENT_TYPE
from contracts.events import AuditAction, AuditRecipientKind, AuditRecorded
from services.audit.app import SERVICE as AUDIT
from services.intake.app import SERVICE as INTAKE

from ..support import drain, publish, submission
from .conftest import asyncpg_connect, running

pytestmark = pytest.mark.integration


def record(settings, org: str) -> dict:
    data = AuditRecorded(
        action=AuditAction.ANSWER,
        recipient_kind=AuditRecipientKind.SENDER,
        recipient_org=org,
        referral_id=uuid.uuid4(),
        by_service="intake",
        at=datetime.now(UTC),
    )
    return json.loads(data.envelope(source=settings.names.source("intake")).to_json())


async def publish_batch(settings, events: list[dict]) -> None:
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(settings.names.events, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                json.dumps(events).encode(),
                content_type=BATCH_CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=str(uuid.uuid4()),
                type=AuditRecorded.TYPE,
            ),
            routing_key=f"{AuditRecorded.TYPE}.intake",
        )


async def trail(settings) -> list:
    async with asyncpg_connect(settings) as conn:
        schema = settings.names.schema("audit")
        return await conn.fetch(f'SELECT * FROM "{schema}".audit_record ORDER BY seq')


async def until(settings, count: int) -> list:
    rows: list = []
    for _ in range(200):
        rows = await trail(settings)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"the trail holds {len(rows)} records, not {count}")


async def test_each_record_of_a_batch_is_kept_once_and_a_bad_one_parks_the_whole(settings):
    good = [record(settings, org) for org in ("A81001", "B82005", "C83001")]
    async with running(AUDIT, settings):
        await publish_batch(settings, good)
        await publish_batch(settings, good[1:])  # sent again: already on the trail
        rows = await until(settings, 3)
        bad = [record(settings, "D84001"), record(settings, "E85001")]
        bad[1]["data"]["recipient_org"] = "not an id"
        await publish_batch(settings, bad)
        letters = await drain(settings, settings.names.dead_letter_queue("audit"), within=15)
        await asyncio.sleep(0.5)
        after = await trail(settings)
    assert [r["event_id"] for r in rows] == [e["id"] for e in good]
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert len(after) == 3  # the good record beside the bad one waits with it, not alone
    assert len(letters) == 1
    letter = letters[0]
    assert letter.content_type == BATCH_CONTENT_TYPE
    assert [e["id"] for e in json.loads(letter.body)] == [e["id"] for e in bad]  # all kept
    assert "event 1 of the batch" in letter.headers["x-linkwell-detail"]


async def test_the_relay_sends_what_one_transaction_records_as_one_message(settings):
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection, running(INTAKE, settings) as intake:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(settings.names.events, f"{AuditRecorded.TYPE}.#")
        await publish(settings, submission(org="A81001"))  # answered in v1 and in v2
        message = None
        for _ in range(100):
            intake.pollers[0].wake()
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                break
            await asyncio.sleep(0.1)
    assert message is not None
    assert message.content_type == BATCH_CONTENT_TYPE
    events = json.loads(message.body)
    assert [e["type"] for e in events] == [AuditRecorded.TYPE] * 2
    assert {e["data"]["recipient_org"] for e in events} == {"A81001"}
    assert len({e["id"] for e in events}) == 2
