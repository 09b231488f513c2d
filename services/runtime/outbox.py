"""Transactional outbox: events are written with the state change that caused them and
published afterwards by a relay, so an event exists on the wire iff its cause committed.

The relay claims unpublished rows with ``FOR UPDATE SKIP LOCKED`` (replicas share the
work), publishes them persistent with publisher confirms, then marks them. A crash
between publish and mark re-publishes the same event id, which consumers drop.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractExchange, DeliveryMode

from contracts import CONTENT_TYPE, CloudEvent

from .failpoints import failpoint
from .logs import get_logger

log = get_logger(__name__)

PUBLISH_TIMEOUT = 10.0  # seconds for a broker confirm; a blocked broker must not hang us


def notify_channel(schema: str, what: str) -> str:
    return f"{schema}_{what}"


async def enqueue(
    conn: asyncpg.Connection, event: CloudEvent[Any], exchange: str, routing_key: str
) -> None:
    await conn.execute(
        "INSERT INTO outbox (event_id, event_type, exchange, routing_key, correlation_id, body)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        event.id,
        event.type,
        exchange,
        routing_key,
        event.correlationid,
        event.to_json(),
    )


class Poller(ABC):
    """Claims pending rows in batches; woken by LISTEN/NOTIFY, with a safety poll."""

    name = "poller"

    def __init__(self, dsn: str, pool: asyncpg.Pool, channel: str, interval: float, batch: int):
        self._dsn = dsn
        self._pool = pool
        self._channel = channel
        self._interval = interval
        self._batch = batch
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None

    @abstractmethod
    async def process_batch(self, conn: asyncpg.Connection, limit: int) -> int:
        """Handle up to ``limit`` pending rows inside the open transaction; return the count."""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop after a last pass, so that work committed before shutdown is not left behind."""
        self._stopping = True
        self._wake.set()
        if self._task:
            await self._task
        if self._listener and not self._listener.is_closed():
            await self._listener.close()

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        listener = None
        try:
            listener = await asyncpg.connect(self._dsn, timeout=5)
            await listener.add_listener(self._channel, lambda *_: self._wake.set())
            self._listener = listener
        except Exception:
            self._listener = None  # fall back to polling until the database returns
            if listener is not None:
                listener.terminate()

    async def run_once(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            return await self.process_batch(conn, self._batch)

    async def _run(self) -> None:
        failures = 0
        while True:
            stopping = self._stopping
            self._wake.clear()
            await self._listen()
            try:
                handled = await self.run_once()
                failures = 0
            except Exception:
                failures += 1
                log.exception(f"{self.name}_failed", failures=failures)
                handled = 0
                if stopping:
                    return
                await asyncio.sleep(min(0.2 * 2**failures, 10.0))
                continue
            if handled >= self._batch:
                continue  # more waiting (also when stopping: drain what was committed)
            if stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)


class Publisher:
    """Publishes stored events: persistent, confirmed, with AMQP properties mirroring the
    envelope so that consumers and tools can route and trace without parsing the body."""

    def __init__(self, amqp_url: str, app_id: str):
        self._url = amqp_url
        self._app_id = app_id
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        # A mandatory message the broker cannot route raises instead of vanishing.
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )

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
    ) -> None:
        """Returns once the broker has confirmed the message (or raises)."""
        target = await self._exchange(exchange)
        await target.publish(
            aio_pika.Message(
                body,
                delivery_mode=DeliveryMode.PERSISTENT,
                content_type=CONTENT_TYPE,
                message_id=message_id,
                type=event_type,
                correlation_id=correlation_id,
                app_id=self._app_id,
                headers=headers or {},
            ),
            routing_key=routing_key,
            mandatory=mandatory,
            timeout=PUBLISH_TIMEOUT,
        )


class OutboxRelay(Poller):
    name = "outbox_relay"

    def __init__(self, publisher: Publisher, **kwargs: Any):
        super().__init__(**kwargs)
        self._publisher = publisher

    async def process_batch(self, conn: asyncpg.Connection, limit: int) -> int:
        rows = await conn.fetch(
            "SELECT id, event_id, event_type, exchange, routing_key, correlation_id, body,"
            " attempts FROM outbox WHERE published_at IS NULL AND next_attempt_at <= now()"
            " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )
        if not rows:
            return 0
        results = await asyncio.gather(
            *(
                self._publisher.publish(
                    row["exchange"],
                    row["routing_key"],
                    row["body"],
                    message_id=row["event_id"],
                    event_type=row["event_type"],
                    correlation_id=row["correlation_id"],
                )
                for row in rows
            ),
            return_exceptions=True,
        )
        failpoint("after_publish")
        done = [row["id"] for row, result in zip(rows, results, strict=True) if result is None]
        await conn.execute(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", done
        )
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, BaseException):
                # This row waits, backing off; the rest of the outbox moves on.
                delay = min(0.5 * 2 ** row["attempts"], 300.0)
                await conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2,"
                    " next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
                    row["id"],
                    f"{type(result).__name__}: {result}"[:500],
                    delay,
                )
                log.warning(
                    "outbox_publish_failed",
                    event_id=row["event_id"],
                    error=type(result).__name__,
                    retry_in=delay,
                )
        log.debug("outbox_published", count=len(done))
        return len(done) if len(done) == len(rows) else 0
