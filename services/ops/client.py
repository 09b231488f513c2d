"""What an outside client does: publish to <ns>.inbound, and watch <ns>.events through
a temporary queue. Used by ``linkwell submit``/``demo``, the tests and the benchmark."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
from yarl import URL

from contracts import org_from_source, org_source
from contracts.schema import example
from services.runtime.settings import Settings


def new_envelope(event_type: str, org: str, **data: Any) -> dict[str, Any]:
    """An envelope as an outside organisation would send it: the type's example with a
    fresh id and time (what happened, happened now), ``org`` as sender, and ``data`` laid
    over the example's data."""
    env = example(event_type)
    env["id"] = str(uuid.uuid4())
    env["source"] = org_source(org)
    env["time"] = datetime.now(UTC).isoformat()
    for key in env["data"]:
        if key.endswith("_at"):
            env["data"][key] = env["time"]
    env["data"].update({k: str(v) if isinstance(v, uuid.UUID) else v for k, v in data.items()})
    subject = env["data"].get("referral_id") or env["data"].get("sender_reference")
    if subject is None:
        env.pop("subject", None)
    else:
        env["subject"] = subject
    return env


def broker_user(amqp_url: str) -> str:
    """The username of an AMQP URL: what the broker checks a message's ``user_id`` against."""
    return URL(amqp_url).user or "guest"


async def publish_inbound(
    settings: Settings,
    body: bytes,
    routing_key: str,
    *,
    connection: Any = None,
    message_id: str | None = None,
) -> None:
    """Publish to <ns>.inbound as an outside producer would: persistent, confirmed, and
    with ``user_id`` set so that the broker vouches for who sent it."""
    own = connection is None
    connection = connection or await aio_pika.connect(settings.amqp_url)
    try:
        async with connection.channel() as channel:
            exchange = await channel.get_exchange(settings.names.inbound, ensure=False)
            await exchange.publish(
                aio_pika.Message(
                    body,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    content_type="application/cloudevents+json",
                    user_id=broker_user(settings.amqp_url),
                    message_id=message_id,
                ),
                routing_key=routing_key,
            )
    finally:
        if own:
            await connection.close()


class Tap:
    """Records every message on <ns>.events (or a queue) with its routing key."""

    def __init__(self, settings: Settings, binding: str = "#", exchange: str | None = None):
        self.settings = settings
        self.binding = binding
        self.exchange = exchange or settings.names.events
        self.messages: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.received_at: list[float] = []
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
        except (ValueError, RecursionError):
            body = {"_raw": message.body.decode(errors="replace")}
        # a batch (several events in one message): seen as its events, one by one
        bodies = body if isinstance(body, list) else [body]
        async with self._changed:
            for one in bodies:
                self.received_at.append(time.monotonic())
                entry = one if isinstance(one, dict) else {"_raw": str(one)}
                self.messages.append(
                    (message.routing_key or "", entry, dict(message.headers or {}))
                )
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
        self, predicate: Callable[[Tap], bool], within: float = 20.0, what: str = ""
    ) -> None:
        deadline = time.monotonic() + within
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

    async def wait_count(
        self, event_type: str, n: int, within: float = 20.0, **where: Any
    ) -> list[dict[str, Any]]:
        await self.wait_for(
            lambda t: len(t.events(event_type, **where)) >= n, within, f"{n} x {event_type} {where}"
        )
        return self.events(event_type, **where)


ANSWER_TYPES = (
    "referral.accepted.v2",
    "referral.rejected.v1",
    "referral.duplicate.v1",
    "referral.status.v1",
    "event.rejected.v1",
)


def answers(event: dict[str, Any], submission_id: str) -> bool:
    data = event.get("data") or {}
    return submission_id in (data.get("submission_event_id"), data.get("rejected_event_id"))


async def submit_and_wait(
    settings: Settings, envelope: dict[str, Any], within: float
) -> list[dict[str, Any]]:
    """Publish as the sending organisation and collect the answers to this submission: the
    first (accepted, rejected, duplicate) and, where one follows, its status. Listens on a
    private queue bound to the sender's answers where the broker user may declare one (an
    operator, local development); otherwise on the organisation's own queue, taking only
    the answers to this submission and leaving the rest."""
    org = org_from_source(envelope.get("source"))
    if org is None:
        raise ValueError("source must be urn:linkwell:org:<ORG CODE>")
    connection = await aio_pika.connect(settings.amqp_url)
    got: list[dict[str, Any]] = []
    async with connection:
        channel = await connection.channel()
        queue: Any
        try:
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            for event_type in ANSWER_TYPES:
                await queue.bind(settings.names.events, f"{event_type}.{org}")
            private = True
        except aio_pika.exceptions.ChannelAccessRefused:
            channel = await connection.channel()
            queue = await channel.get_queue(settings.names.organisation_queue(org), ensure=False)
            private = False
        await publish_inbound(
            settings, json.dumps(envelope).encode(), envelope["type"], connection=connection
        )
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            message = await queue.get(no_ack=private, fail=False)
            if message is None:
                if got and got[0]["type"] != "referral.duplicate.v1":
                    break  # answered; a duplicate waits for the status that follows it
                await asyncio.sleep(0.1)
                continue
            event = json.loads(message.body)
            mine = answers(event, envelope["id"])
            if not private:
                await (message.ack() if mine else message.nack(requeue=True))
            if mine and event.get("type") in ANSWER_TYPES:  # not the deprecated v1 beside v2
                got.append(event)
                if event["type"] in (
                    "referral.status.v1",
                    "referral.rejected.v1",
                    "event.rejected.v1",
                ):
                    break
    return got


def describe_answers(got: list[dict[str, Any]], within: float) -> tuple[bool, list[str]]:
    """Lines for a person reading them; False if nothing came."""
    if not got:
        return False, [f"no answer within {within:.0f} s (is the pipeline running?)"]
    lines = []
    for event in got:
        data = event["data"]
        match event["type"]:
            case "referral.accepted.v2":
                rid, reference = data["referral_id"], data["sender_reference"]
                lines.append(f"accepted: referral {rid} (reference {reference})")
            case "referral.duplicate.v1":
                lines.append(
                    f"duplicate: already received as event {data['original_submission_event_id']}, "
                    f"referral {data['referral_id']}; no second referral was made"
                )
            case "referral.status.v1" if data["status"] == "duplicate":
                lines.append(f"current status: {data.get('task_status')} ({data.get('reason')})")
            case "referral.status.v1":
                lines.append(f"status: {data.get('task_status')}: {data['message']}")
            case _:
                lines.append(f"rejected ({event['type']}):")
                lines += [
                    f"  {r['code']}"
                    + (f" [{r['field']}]" if r.get("field") else "")
                    + f": {r['message']}"
                    for r in data["reasons"]
                ]
    return True, lines
