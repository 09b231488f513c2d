"""An event a handler has no use for is acknowledged at once, with no transaction: intake
needs a referral's end only, so every other step outcomes tells costs it nothing."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest

from contracts.schema import example
from services.intake.app import SERVICE as INTAKE

from .conftest import asyncpg_connect, running

pytestmark = pytest.mark.integration


async def tell(settings, step: str) -> str:
    env = example("referral.updated.v1")
    env["id"] = str(uuid.uuid4())
    env["source"] = settings.names.source("outcomes")
    env["data"].update(referral_id=str(uuid.uuid4()), step=step)
    if step != "closed":
        env["data"]["codes"] = []
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(settings.names.events, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                json.dumps(env).encode(),
                content_type="application/cloudevents+json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                type=env["type"],
                message_id=env["id"],
            ),
            routing_key=f"referral.updated.v1.{env['data']['pcn']}",
        )
    return env["id"]


async def claimed(settings) -> set[str]:
    async with asyncpg_connect(settings) as conn:
        schema = settings.names.schema("intake")
        rows = await conn.fetch(f'SELECT event_id FROM "{schema}".inbox')
    return {r["event_id"] for r in rows}


async def queue_empty(settings) -> bool:
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(settings.names.queue("intake"), passive=True)
        return queue.declaration_result.message_count == 0


async def test_a_step_intake_does_not_need_is_acknowledged_without_a_transaction(settings):
    async with running(INTAKE, settings):
        skipped = await tell(settings, "in_progress")
        ended = await tell(settings, "closed")
        for _ in range(100):
            if ended in await claimed(settings):
                break
            await asyncio.sleep(0.05)
        seen = await claimed(settings)
        assert ended in seen  # the end: handled in a transaction, claimed in the inbox
        assert skipped not in seen  # another step: never claimed
        assert await queue_empty(settings)  # and yet acknowledged, not left or parked
