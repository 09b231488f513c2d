"""Broker topology, declared idempotently with aio-pika.

Per namespace: topic exchanges ``inbound`` (with an alternate exchange catching what no
service binds) and ``events``; a direct ``dead-letter`` exchange. Per service: a durable
quorum queue bound to the types it handles, one delay queue per retry step (a message
waits out the queue's TTL and is dead-lettered back to the service queue), and a
dead-letter queue. The service queue's own delivery limit is a backstop against a
message that kills its consumer outright.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, ExchangeType

from contracts.events import Direction, EventData

from .logs import get_logger
from .names import Names
from .settings import Settings

log = get_logger(__name__)

QUORUM = {"x-queue-type": "quorum"}
# Redeliveries before the broker dead-letters a message that keeps killing its consumer.
# A queue argument cannot change once declared, so this is a constant, not a setting.
DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class Binding:
    exchange: str
    routing_key: str


def bindings_for(
    names: Names, models: Iterable[type[EventData]], words: tuple[str, ...] | None = None
) -> list[Binding]:
    """Inbound types are bound by exact type; emitted ones by type plus any routing word,
    or only these routing words (the gateway: answers to the organisations it serves)."""
    out = []
    for model in models:
        if model.DIRECTION is Direction.INBOUND:
            out.append(Binding(names.inbound, model.TYPE))
        else:
            out += [Binding(names.events, f"{model.TYPE}.{w}") for w in words or ("*",)]
    return out


@dataclass(frozen=True)
class ServiceTopology:
    name: str
    models: tuple[type[EventData], ...]
    # also take what reaches <ns>.inbound and no service binds (an unknown type or version),
    # to answer its sender: intake, the front door
    answers_unrouted: bool = False
    # emitted types bound with these routing words only (None: with any)
    words: tuple[str, ...] | None = None


async def _catch_all(channel: AbstractChannel, name: str, arguments: dict[str, object]) -> None:
    exchange = await channel.declare_exchange(name, ExchangeType.FANOUT, durable=True)
    queue = await channel.declare_queue(name, durable=True, arguments={**QUORUM, **arguments})
    await queue.bind(exchange)


async def declare_exchanges(channel: AbstractChannel, names: Names) -> None:
    # Inbound messages no service binds (an unsupported version, a typo) go to the service
    # that answers them (intake's queue is bound here), never dropped.
    await channel.declare_exchange(names.unrouted, ExchangeType.FANOUT, durable=True)
    # Emitted events nobody has subscribed to yet (a practice whose GP integrator has no
    # queue yet): the latest are kept for replay instead of being dropped by the broker.
    await _catch_all(
        channel, names.events_unrouted, {"x-max-length": 100_000, "x-overflow": "drop-head"}
    )
    await channel.declare_exchange(
        names.inbound,
        ExchangeType.TOPIC,
        durable=True,
        arguments={"alternate-exchange": names.unrouted},
    )
    await channel.declare_exchange(
        names.events,
        ExchangeType.TOPIC,
        durable=True,
        arguments={"alternate-exchange": names.events_unrouted},
    )
    await channel.declare_exchange(names.dead_letter, ExchangeType.DIRECT, durable=True)


async def declare_service(
    channel: AbstractChannel, settings: Settings, service: ServiceTopology
) -> None:
    names = settings.names
    main = names.queue(service.name)
    queue = await channel.declare_queue(
        main,
        durable=True,
        arguments={
            **QUORUM,
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": names.dead_letter,
            "x-dead-letter-routing-key": service.name,
        },
    )
    for binding in bindings_for(names, service.models, service.words):
        await queue.bind(binding.exchange, binding.routing_key)
    if service.answers_unrouted:
        await queue.bind(names.unrouted, "")
    retry = await channel.declare_exchange(
        names.retry_exchange(service.name), ExchangeType.DIRECT, durable=True
    )
    for delay in settings.retry_delays:
        delayed = await channel.declare_queue(
            names.retry_queue(service.name, delay),
            durable=True,
            arguments={
                **QUORUM,
                "x-message-ttl": round(delay * 1000),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": main,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
        await delayed.bind(retry, names.retry_queue(service.name, delay))
    dlq = await channel.declare_queue(
        names.dead_letter_queue(service.name), durable=True, arguments=QUORUM
    )
    await dlq.bind(names.dead_letter, service.name)


async def declare(settings: Settings, services: Iterable[ServiceTopology]) -> None:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        await declare_exchanges(channel, settings.names)
        for service in services:
            await declare_service(channel, settings, service)
    finally:
        await connection.close()


async def declare_organisation_queues(
    settings: Settings, queues: dict[str, tuple[str, ...]]
) -> None:
    """Each organisation's queue, bound to <ns>.events with its own routing keys only
    (organisations may not declare or bind anything themselves). What the organisation's
    consumer rejects is dead-lettered, through the default exchange, to its own
    ``<queue>.dead-letter``, which only it may read: never lost, never another's."""
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        await declare_exchanges(channel, settings.names)
        for name, keys in queues.items():
            dead = settings.names.dead_letter_of(name)
            await channel.declare_queue(dead, durable=True, arguments=QUORUM)
            arguments = {
                **QUORUM,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead,
            }
            try:
                queue = await channel.declare_queue(name, durable=True, arguments=arguments)
            except aio_pika.exceptions.ChannelPreconditionFailed:
                # made before organisations' queues dead-lettered: kept as it is (its
                # messages matter more); an operator recreates it when it is empty
                log.warning("organisation_queue_without_dead_letters", queue=name)
                channel = await connection.channel()
                queue = await channel.declare_queue(name, passive=True)
            for key in keys:
                await queue.bind(settings.names.events, key)
    finally:
        await connection.close()


async def verify(settings: Settings, service: ServiceTopology) -> None:
    """Raise unless the service's queue exists (declared by an operator's
    ``linkwell topology``, where services may not declare anything themselves). A
    passive declare needs no permission beyond connecting."""
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(settings.names.queue(service.name), passive=True)
    finally:
        await connection.close()


async def delete(settings: Settings, services: Iterable[ServiceTopology]) -> None:
    """Remove a namespace's exchanges and queues (tests and teardown only)."""
    names = settings.names
    services = list(services)
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        queues = [names.events_unrouted]
        for service in services:
            queues += [names.queue(service.name), names.dead_letter_queue(service.name)]
            queues += [names.retry_queue(service.name, d) for d in settings.retry_delays]
        for queue in queues:
            await channel.queue_delete(queue)
        exchanges = [names.retry_exchange(s.name) for s in services] + [
            names.inbound,
            names.events,
            names.dead_letter,
            names.unrouted,
            names.events_unrouted,
        ]
        for exchange in exchanges:
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()
