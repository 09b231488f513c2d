"""Test helpers: namespaced settings, publishing as an outside producer, and a tap that
records everything Linkwell emits."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika

from contracts.nhs import unique_synthetic_nhs_number
from contracts.schema import example
from services.ops.client import Tap, new_envelope, publish_inbound
from services.runtime.settings import Settings

__all__ = ["Tap", "example"]


CREATED_NAMESPACES: set[str] = set()  # checked clean at the end of the session


def test_settings(amqp_url: str, database_url: str, **overrides: Any) -> Settings:
    settings = Settings(
        amqp_url=amqp_url,
        database_url=database_url,
        # t + creation minute + random: tests/conftest.py purges what a killed run left
        namespace=f"t{datetime.now(UTC):%y%m%d%H%M}{uuid.uuid4().hex[:5]}",
        retry_delays=(0.2, 0.4),
        poll_interval=0.2,
        graceful_timeout=5.0,
        **{"http_port": 0, **overrides},
    )
    CREATED_NAMESPACES.add(settings.namespace)
    return settings


def submission(
    reference: str | None = None,
    *,
    org: str = "A81001",
    pcn: str = "U12345",
    practice: str = "A81001",
    agency_type: str = "general_practice",
    **data_overrides: Any,
) -> dict[str, Any]:
    """A fresh, valid referral.submitted.v1 envelope: new id, new reference, a new person
    (a synthetic NHS number) unless ``person`` says otherwise."""
    env = new_envelope(
        "referral.submitted.v1",
        org,
        sender_reference=reference or f"REF-{uuid.uuid4().hex[:12]}",
        pcn=pcn,
        registered_practice=practice,
        **data_overrides,
    )
    env["data"]["referrer"]["agency_type"] = agency_type
    if "person" not in data_overrides:
        env["data"]["person"]["nhs_number"] = unique_synthetic_nhs_number()
    return env


inbound = new_envelope


def internal(event_type: str, *, producer: str = "intake", **data: Any) -> dict[str, Any]:
    """An event as a Linkwell service would emit it: the type's example, a fresh id, ``data``
    laid over the example's data, the subject the referral id."""
    env = example(event_type)
    env["id"] = str(uuid.uuid4())
    env["source"] = f"urn:linkwell:linkwell:{producer}"
    env["time"] = datetime.now(UTC).isoformat()
    for key in env["data"]:
        if key.endswith("_at") or key == "at":  # it happens now, unless the test says when
            env["data"][key] = env["time"]
    env["data"].update({k: str(v) if isinstance(v, uuid.UUID) else v for k, v in data.items()})
    if "referral_id" in env["data"]:
        env["subject"] = env["data"]["referral_id"]
    return env


def accepted(pcn: str = "U12345", at: datetime | None = None, **data: Any) -> dict[str, Any]:
    """A referral.accepted.v1 as intake would emit it, for a new referral."""
    rid = str(uuid.uuid4())
    return internal(
        "referral.accepted.v1",
        referral_id=rid,
        pcn=pcn,
        sender_reference=f"R-{rid[:8]}",
        accepted_at=(at or datetime.now(UTC)).isoformat(),
        **{"person_id": str(uuid.uuid4()), **data},
    )


def worker(pcn: str, worker_id: str, capacity: int) -> dict[str, Any]:
    return inbound(
        "linkworker.registered.v1", pcn, link_worker_id=worker_id, pcn=pcn, capacity=capacity
    )


async def publish(
    settings: Settings, envelope: dict[str, Any] | bytes, routing_key: str | None = None
) -> None:
    """Publish to <ns>.inbound exactly as an outside producer would, with plain aio-pika."""
    if isinstance(envelope, bytes):
        await publish_inbound(settings, envelope, routing_key or "referral.submitted.v1")
    else:
        await publish_inbound(
            settings, json.dumps(envelope).encode(), routing_key or envelope["type"]
        )


def announced(envelope: dict[str, Any]) -> list[dict[str, Any]]:
    """The envelopes intake publishes for an acceptance, given its ``referral.accepted.v1``
    (``accepted``): the v1 itself and each consumer's own event, derived as intake derives
    them (``services.intake.domain.announcements``), each with its own id. Any other
    envelope: itself alone."""
    from contracts.events import ReferralAccepted
    from services.intake.domain import announcements

    if envelope["type"] != ReferralAccepted.TYPE:
        return [envelope]
    data = ReferralAccepted.model_validate(envelope["data"])
    out = []
    for event in announcements(data, datetime.fromisoformat(envelope["time"]).date()):
        if event.TYPE == ReferralAccepted.TYPE:
            out.append(envelope)
            continue
        derived = dict(envelope, type=event.TYPE, data=event.model_dump(mode="json"))
        derived["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{envelope['id']}:{event.TYPE}"))
        out.append(derived)
    return out


def announced_to(envelope: dict[str, Any], event_type: str) -> dict[str, Any]:
    """Of what intake publishes for this acceptance, the event of this type."""
    [one] = [e for e in announced(envelope) if e["type"] == event_type]
    return one


async def emit(settings: Settings, envelope: dict[str, Any]) -> None:
    """Publish to <ns>.events as a Linkwell service would (a referral.accepted.v1: with
    everything intake publishes beside it, ``announced``)."""
    from contracts import EVENTS

    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(settings.names.events, ensure=False)
        for each in announced(envelope):
            model = EVENTS[each["type"]].model
            key = (
                f"{each['type']}.{each['data'][model.ROUTED_BY]}"
                if model.ROUTED_BY
                else (each["type"])
            )
            await exchange.publish(
                aio_pika.Message(
                    json.dumps(each).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                ),
                routing_key=key,
            )


async def drain(
    settings: Settings, queue_name: str, within: float = 10.0, count: int = 1
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Wait for at least ``count`` messages on a queue, and take all there are."""
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=False)
        got: list[aio_pika.abc.AbstractIncomingMessage] = []
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                got.append(message)
                continue
            if len(got) >= count:
                return got
            await asyncio.sleep(0.1)
        return got


class TcpProxy:
    """A TCP proxy a test can cut and restore, to take a broker or database away from one
    service without touching the servers every other test uses."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    async def restore(self) -> None:
        await self.start()  # same port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._pipes |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()
                self._pipes.discard(dst)

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by this proxy's."""
        from yarl import URL

        return str(URL(url).with_host("127.0.0.1").with_port(self.port))
