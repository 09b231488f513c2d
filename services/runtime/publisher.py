"""Publishing with confirms: persistent messages, each awaited until the broker has taken
responsibility for it (or refused it), so a caller never marks as sent what was not.

Every message carries the AMQP ``user_id`` of the connection's broker user: the broker
refuses one whose ``user_id`` is not that user, so a consumer knows who published it
(the gateway publishes inbound events this way, as an organisation would)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, DeliveryMode
from aio_pika.exceptions import (
    AMQPConnectionError,
    ChannelClosed,
    ChannelInvalidStateError,
    DeliveryError,
)
from yarl import URL

from contracts import CONTENT_TYPE

PUBLISH_TIMEOUT = 10.0  # seconds for a broker confirm; a blocked broker must not hang us


class Publisher:
    """One robust connection and a confirming channel. AMQP properties mirror the envelope
    (id, type, correlation) so that consumers and tools can route and trace without
    parsing the body."""

    def __init__(self, amqp_url: str, app_id: str):
        self._url = amqp_url
        self._app_id = app_id
        self.user = URL(amqp_url).user or None  # the broker checks it on every message
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._generation = 0
        self._reopening = asyncio.Lock()

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        await self._open_channel()

    async def _open_channel(self) -> None:
        assert self._connection is not None
        # A mandatory message the broker cannot route raises instead of vanishing.
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._exchanges = {}
        self._generation += 1

    async def _recover(self, generation: int) -> None:
        """The broker refused (nacked) a message, closed the channel, or the connection is
        away: a fresh channel, or if the connection is not back, a fresh connection (which
        looks the broker's name up again: another node of a cluster). Once per channel.
        (A quorum queue that changed leader while a channel first published to it can
        keep refusing that channel, on RabbitMQ 3.10, until it is closed.)"""
        async with self._reopening:
            if generation != self._generation or self._channel is None:
                return  # another failure on this channel recovered it already
            old_channel, old_connection = self._channel, self._connection
            if self.connected:
                await self._open_channel()
            else:
                self._connection = await asyncio.wait_for(
                    aio_pika.connect_robust(self._url), PUBLISH_TIMEOUT
                )
                await self._open_channel()
                if old_connection is not None:
                    with contextlib.suppress(Exception):
                        await old_connection.close()
            with contextlib.suppress(Exception):
                await old_channel.close()

    async def close(self) -> None:
        if self._connection:
            await self._connection.close()

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._connection.connected.is_set()

    async def _exchange(self, name: str) -> AbstractExchange:
        assert self._channel is not None, "connect() first"
        if name == "":
            return self._channel.default_exchange
        if name not in self._exchanges:
            self._exchanges[name] = await self._channel.get_exchange(name, ensure=False)
        return self._exchanges[name]

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        event_type: str | None = None,
        correlation_id: str | None = None,
        headers: dict[str, Any] | None = None,
        mandatory: bool = False,
        content_type: str = CONTENT_TYPE,
    ) -> None:
        """Returns once the broker has confirmed the message (or raises). A refusal or a
        channel the broker closed is met with a fresh channel and one more try at once (the
        same message id: consumers drop a second copy)."""
        for last in (False, True):
            generation = self._generation
            try:
                target = await self._exchange(exchange)
                await self._publish(
                    target,
                    routing_key,
                    body,
                    message_id,
                    event_type,
                    correlation_id,
                    headers,
                    mandatory,
                    content_type,
                )
                return
            except (DeliveryError, ChannelInvalidStateError, ChannelClosed, AMQPConnectionError):
                await self._recover(generation)
                if last:
                    raise

    async def _publish(
        self,
        target: AbstractExchange,
        routing_key: str,
        body: bytes,
        message_id: str,
        event_type: str | None,
        correlation_id: str | None,
        headers: dict[str, Any] | None,
        mandatory: bool,
        content_type: str,
    ) -> None:
        await target.publish(
            aio_pika.Message(
                body,
                delivery_mode=DeliveryMode.PERSISTENT,
                content_type=content_type,
                message_id=message_id,
                type=event_type,
                correlation_id=correlation_id,
                app_id=self._app_id,
                user_id=self.user,
                headers=headers or {},
            ),
            routing_key=routing_key,
            mandatory=mandatory,
            timeout=PUBLISH_TIMEOUT,
        )
