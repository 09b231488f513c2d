"""Test helpers: namespaced settings, publishing as an outside producer, and a tap that
records everything Linkwell emits."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika

from services.runtime.settings import Settings

EXAMPLES = Path(__file__).parent.parent / "contracts" / "examples"


def example(event_type: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{event_type}.json").read_text())


def test_settings(amqp_url: str, database_url: str, **overrides: Any) -> Settings:
    return Settings(
        amqp_url=amqp_url,
        database_url=database_url,
        namespace=f"t{uuid.uuid4().hex[:10]}",
        retry_delays=(0.2, 0.4),
        poll_interval=0.2,
        graceful_timeout=5.0,
        **overrides,
    )


def submission(
    reference: str | None = None,
    *,
    org: str = "A81001",
    pcn: str = "U12345",
    practice: str = "A81001",
    agency_type: str = "general_practice",
    **data_overrides: Any,
) -> dict[str, Any]:
    """A fresh, valid referral.submitted.v1 envelope (new id, new reference)."""
    env = example("referral.submitted.v1")
    env["id"] = str(uuid.uuid4())
    env["source"] = f"urn:linkwell:org:{org}"
    env["time"] = datetime.now(UTC).isoformat()
    data = env["data"]
    data["sender_reference"] = reference or f"REF-{uuid.uuid4().hex[:12]}"
    env["subject"] = data["sender_reference"]
    data["pcn"] = pcn
    data["registered_practice"] = practice
    data["referrer"]["agency_type"] = agency_type
    for key, value in data_overrides.items():
        data[key] = value
    return env


def inbound(event_type: str, org: str, **data: Any) -> dict[str, Any]:
    env = copy.deepcopy(example(event_type))
    env["id"] = str(uuid.uuid4())
    env["source"] = f"urn:linkwell:org:{org}"
    env["time"] = datetime.now(UTC).isoformat()
    env["data"].update({k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in data.items()})
    if "referral_id" in env["data"]:
        env["subject"] = env["data"]["referral_id"]
    else:
        env.pop("subject", None)
    return env


def worker(pcn: str, worker_id: str, capacity: int) -> dict[str, Any]:
    return inbound(
        "linkworker.registered.v1", pcn, link_worker_id=worker_id, pcn=pcn, capacity=capacity
    )


async def publish(settings: Settings, envelope: dict[str, Any] | bytes, routing_key: str | None = None) -> None:
    """Publish to <ns>.inbound exactly as an outside producer would, with plain aio-pika."""
    body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
    key = routing_key or (envelope["type"] if isinstance(envelope, dict) else "referral.submitted.v1")
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(settings.names.inbound, ensure=False)
        await exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                             content_type="application/cloudevents+json"),
            routing_key=key,
        )


class Tap:
    """Records every message on <ns>.events (or a queue) with its routing key."""

    def __init__(self, settings: Settings, binding: str = "#", exchange: str | None = None):
        self.settings = settings
        self.binding = binding
        self.exchange = exchange or settings.names.events
        self.messages: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> Tap:
        self._connection = await aio_pika.connect(self.settings.amqp_url)
        channel = await self._connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(self.exchange, self.binding)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._connection.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            body = json.loads(message.body)
        except ValueError:
            body = {"_raw": message.body.decode(errors="replace")}
        async with self._changed:
            self.messages.append((message.routing_key or "", body, dict(message.headers or {})))
            self._changed.notify_all()

    def events(self, event_type: str | None = None, **where: Any) -> list[dict[str, Any]]:
        out = []
        for _key, body, _headers in self.messages:
            if event_type and body.get("type") != event_type:
                continue
            data = body.get("data", {})
            if all(str(data.get(k)) == str(v) for k, v in where.items()):
                out.append(body)
        return out

    def keys(self, event_type: str) -> list[str]:
        return [k for k, body, _ in self.messages if body.get("type") == event_type]

    async def wait_for(
        self, predicate: Callable[[Tap], bool], timeout: float = 20.0, what: str = ""
    ) -> None:
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    summary = [(k, b.get("type")) for k, b, _ in self.messages][-30:]
                    raise AssertionError(f"timed out waiting for {what or predicate}: {summary}")
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    pass

    async def wait_count(self, event_type: str, n: int, timeout: float = 20.0, **where: Any) -> list[dict[str, Any]]:
        await self.wait_for(lambda t: len(t.events(event_type, **where)) >= n, timeout,
                            f"{n} x {event_type} {where}")
        return self.events(event_type, **where)
