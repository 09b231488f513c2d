"""Outside organisations as the compose tests play them, through the port the stack
publishes, each as its own broker user (the sample users of
deploy/rabbitmq/definitions.json): an ``Observer`` reads its own queue, an
``Organisation`` publishes to ``linkwell.inbound`` as itself."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import aio_pika

from contracts.nhs import unique_synthetic_nhs_number
from services.ops.client import new_envelope

from .stack import ComposeStack

INBOUND = "linkwell.inbound"
PCN = "U12345"
PRACTICE = "A81001"
AGENCIES = {"A81001": "general_practice", "FNX01": "fire_service"}


class Observer:
    """A broker user reading its own queue, ``linkwell.org.<user>`` (made and bound to that
    user's events by `linkwell topology` in the migrate step: organisations declare and
    bind nothing). Each message is acknowledged once recorded, so one in flight when a
    queue's leader dies is delivered again, not lost. Keeps every event once per event id
    (Linkwell re-publishes an event only ever with the same id)."""

    def __init__(self, stack: ComposeStack, user: str):
        self.url = stack.amqp_url(user)
        self.queue_name = f"linkwell.org.{user}"
        self.by_id: dict[str, dict[str, Any]] = {}
        self.routing_keys: dict[str, str] = {}
        self.order: list[str] = []  # event ids, in the order first heard
        self.heard_again = 0  # the same event id more than once

    async def __aenter__(self) -> Observer:
        self.connection = await aio_pika.connect(self.url)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=200)
        queue = await channel.get_queue(self.queue_name, ensure=False)
        await queue.consume(self._on_message, exclusive=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        event = json.loads(message.body)
        if event["id"] in self.by_id:
            self.heard_again += 1
        else:
            self.by_id[event["id"]] = event
            self.routing_keys[event["id"]] = message.routing_key or ""
            self.order.append(event["id"])
        await message.ack()

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [self.by_id[i] for i in self.order if self.by_id[i]["type"] == event_type]

    def keys_of(self, event_type: str) -> set[str]:
        return {self.routing_keys[e["id"]] for e in self.events(event_type)}

    async def wait(self, what: str, predicate, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                heard = Counter(self.by_id[i]["type"] for i in self.order)
                raise AssertionError(f"timed out waiting for {what}; heard {dict(heard)}")
            await asyncio.sleep(0.1)


class Organisation:
    """An outside organisation publishing to linkwell.inbound as itself, with publisher
    confirms: the broker checks the user_id property against the connection's user,
    intake checks it against the envelope's source. A message the broker does not confirm
    (refused, or no answer in 10 s while a queue elects a leader) is sent again, the same
    envelope: intake drops the copy."""

    def __init__(self, stack: ComposeStack, user: str):
        self.user = user
        self.url = stack.amqp_url(user)
        self.resent = 0

    async def __aenter__(self) -> Organisation:
        self.connection = await aio_pika.connect(self.url)
        channel = await self.connection.channel()  # publisher confirms
        self.exchange = await channel.get_exchange(INBOUND, ensure=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.close()

    async def publish(self, envelope: dict[str, Any]) -> None:
        message = aio_pika.Message(
            json.dumps(envelope).encode(),
            user_id=self.user,
            message_id=envelope["id"],
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=envelope["type"],
        )
        for attempt in range(10):
            try:
                await self.exchange.publish(message, routing_key=envelope["type"], timeout=10)
                return
            except (aio_pika.exceptions.DeliveryError, TimeoutError):
                self.resent += 1
                await asyncio.sleep(0.5 * (attempt + 1))
        raise AssertionError(f"{self.user}: {envelope['id']} never confirmed")

    def referral(self, reference: str) -> dict[str, Any]:
        env = new_envelope(
            "referral.submitted.v1",
            self.user,
            sender_reference=reference,
            pcn=PCN,
            registered_practice=PRACTICE,
        )
        env["data"]["referrer"]["agency_type"] = AGENCIES[self.user]
        # a different person each time (one already supported would join their episode)
        env["data"]["person"]["nhs_number"] = unique_synthetic_nhs_number()
        return env
