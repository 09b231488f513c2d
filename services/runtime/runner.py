"""The runner gives a service definition a life: migrate, declare (or check) its topology,
consume, relay the outbox, serve health; on SIGTERM finish in-flight work, flush, close.

A service started while the broker or the database is away does not exit: it reports not
ready and retries, backing off, until both answer (``start``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from faststream import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.schemas import Channel

from . import collector, db, metrics, retention, secure, topology
from .consumer import Consumer
from .errors import is_transient
from .handling import UnitOfWork
from .health import HealthApp, HealthServer, run_checks
from .logs import configure, get_logger
from .outbox import OutboxRelay
from .poller import Poller, notify_channel
from .publisher import Publisher
from .recovery import Parking
from .service import ServiceDef
from .settings import Settings

log = get_logger(__name__)

START_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0)  # seconds between attempts to reach a dependency


async def migrate(settings: Settings, service: ServiceDef) -> list[str]:
    applied = await db.migrate(
        settings.database_url, settings.names.schema(service.name), service.migrations()
    )
    for name, directory in service.schemas.items():
        schema = settings.names.schema(name)
        done = await db.migrate(settings.database_url, schema, db.own_migrations(directory))
        applied += [f"{name}/{version}" for version in done]
    return applied


class Runner:
    def __init__(self, service: ServiceDef, settings: Settings, own_settings: Any = None):
        secure.require_broker(settings.mode, "amqp_url" in settings.model_fields_set)
        self.service = service
        self.settings = settings
        self.own_settings = own_settings
        if own_settings is None and service.settings is not None:
            self.own_settings = service.settings()
        self.names = settings.names
        self.schema = self.names.schema(service.name)
        self.pool: asyncpg.Pool | None = None
        self.publisher = Publisher(settings.amqp_url, app_id=f"linkwell-{service.name}")
        self.broker: RabbitBroker | None = None
        self.pollers: list[Poller] = []
        self.servers = [factory(self) for factory in service.servers]
        self._stopped = False
        self._declared = False
        self._gauges: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self.health: HealthServer | None = None
        if settings.http_port:
            self.health = HealthServer(
                HealthApp(service.name, self.checks()), settings.http_host, settings.http_port
            )

    # -------------------------------------------------------------- health

    def checks(self) -> dict[str, Callable[[], Awaitable[bool]]]:
        async def database() -> bool:
            return self.pool is not None and await self.pool.fetchval("SELECT 1") == 1

        async def broker() -> bool:  # the consuming connection
            return self.broker is not None and await self.broker.ping(timeout=1.0)

        async def publisher() -> bool:  # the outbox relay's and retries' connection
            return self.publisher.connected

        async def topology_declared() -> bool:
            return self._declared

        async def running() -> bool:
            return not self._stopped

        return {
            "database": database,
            "broker": broker,
            "publisher": publisher,
            "topology": topology_declared,
            "running": running,
            **{server.name: server.ready for server in self.servers},  # the gateway's pages
        }

    async def ready(self) -> dict[str, bool]:
        return await run_checks(self.checks())

    # -------------------------------------------------------------- parts

    def unit_of_work(
        self,
        conn: asyncpg.Connection,
        correlation_id: str | None,
        /,
        shared: dict[str, Any] | None = None,
    ) -> UnitOfWork[Any]:
        return self.service.unit_of_work(
            conn, self.names, correlation_id, self.own_settings, shared
        )

    def poller_kwargs(self, what: str) -> dict[str, Any]:
        return {
            "dsn": self.settings.database_url,
            "pool": self.pool,
            "channel": notify_channel(self.schema, what),
            "interval": self.settings.poll_interval,
            "batch": self.settings.outbox_batch,
        }

    def consumer(self) -> Consumer:
        assert self.pool is not None
        return Consumer(
            service=self.service.name,
            names=self.names,
            pool=self.pool,
            parking=Parking(self.publisher, self.names, self.service.name),
            routes=self.service.routes,
            rejections=self.service.rejections,
            unit_of_work=self.unit_of_work,
            trusted_users=self.settings.trusted_users,
            retry_delays=self.settings.retry_delays,
            deferred_limit=self.settings.deferred_limit,
            observe=self.service.observe,
            batch_size=self.settings.batch_size,
            prepare=self.service.prepare,
        )

    # -------------------------------------------------------------- life

    async def start(self) -> None:
        if self.health is not None:  # first, so that liveness answers during start-up
            await self.health.start()
        await self._until_up("database", self._prepare_database)
        await self._until_up("broker", self._prepare_broker)
        for poller in self.pollers:
            await poller.start()
        consumer = self.consumer()
        self.broker = RabbitBroker(
            self.settings.amqp_url,
            graceful_timeout=self.settings.graceful_timeout,
            logger=None,
            app_id=f"linkwell-{self.service.name}",
        )
        self.broker.subscriber(
            RabbitQueue(self.names.queue(self.service.name), declare=False),
            ack_policy=AckPolicy.MANUAL,
            channel=Channel(prefetch_count=self.settings.prefetch),
            title=self.service.name,
            description=self.service.description,
            decoder=_raw_body,  # FastStream never reads the body: admission does
        )(_entry(consumer, self.broker))
        await self._until_up("broker", self.broker.start)
        for server in self.servers:  # takes requests once everything behind it is up
            await server.start()
        self._gauges = asyncio.create_task(self._refresh_gauges(), name="gauges")
        self._retention = asyncio.create_task(retention.of(self), name="retention")
        log.info("started", queue=self.names.queue(self.service.name))

    async def _until_up(self, what: str, step: Callable[[], Awaitable[Any]]) -> None:
        """Run ``step`` until it succeeds, backing off while a dependency is away."""
        failures = 0
        while True:
            try:
                await step()
                return
            except Exception as exc:
                if self._stopped or not _worth_waiting(exc):
                    raise
                delay = START_BACKOFF[min(failures, len(START_BACKOFF) - 1)]
                failures += 1
                log.warning(
                    "waiting_for_dependency",
                    dependency=what,
                    error=type(exc).__name__,
                    retry_in=delay,
                    attempts=failures,
                )
                await asyncio.sleep(delay)

    async def _prepare_database(self) -> None:
        applied = await migrate(self.settings, self.service)
        if applied:
            log.info("migrated", versions=applied)
        if self.pool is None:
            self.pool = await db.create_pool(
                self.settings.database_url,
                self.schema,
                self.service.name,
                self.settings.db_pool_size,
            )

    async def _prepare_broker(self) -> None:
        if self.settings.declare_topology:
            await topology.declare(self.settings, [self.service.topology])
        else:
            await topology.verify(self.settings, self.service.topology)
        self._declared = True
        if not self.publisher.connected:
            await self.publisher.connect()
        if not self.pollers:
            self.pollers = [OutboxRelay(self.publisher, **self.poller_kwargs("outbox"))]
            self.pollers += [factory(self) for factory in self.service.pollers]

    async def _refresh_gauges(self) -> None:
        """Gauges of stored state, from the database, every few seconds."""
        while True:
            try:
                assert self.pool is not None
                async with self.pool.acquire(timeout=5) as conn:
                    await metrics.refresh_outbox(conn, self.service.name)
                    if self.service.state_gauges is not None:
                        await self.service.state_gauges(conn)
            except Exception as exc:  # the database is away: readiness says so
                log.debug("gauges_not_refreshed", error=type(exc).__name__)
            results = await self.ready()
            metrics.READY.labels(self.service.name).set(1 if all(results.values()) else 0)
            await asyncio.sleep(self.settings.metrics_interval)

    async def stop(self) -> None:
        """Stop taking messages, let in-flight ones finish and commit, then flush what
        they wrote to the outbox, and close."""
        if self._stopped:
            return
        self._stopped = True
        log.info("stopping")
        for server in self.servers:  # no new requests; those in flight finish
            with contextlib.suppress(Exception):
                await server.stop()
        for task in (self._gauges, self._retention):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.broker is not None:
            await self.broker.stop()
        for poller in self.pollers:
            with contextlib.suppress(Exception):
                await poller.stop()
        await self.publisher.close()
        if self.pool is not None:
            await self.pool.close()
        if self.health is not None:
            await self.health.stop()
        log.info("stopped")

    async def run_until_signalled(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, metrics.log_cost, self.service.name)
        starting = asyncio.create_task(self.start(), name="start")
        stopping = asyncio.create_task(stop.wait(), name="stop-signal")
        try:
            done, _ = await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting in done:
                starting.result()  # a start that failed outright raises here
                collector.settle()
                await stopping
            else:  # signalled while still waiting for a dependency
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starting
        finally:
            stopping.cancel()
            await self.stop()  # also after a failed start: closes whatever was opened


def _worth_waiting(exc: BaseException) -> bool:
    """A dependency that is away (or a queue an operator has yet to declare), not a bug."""
    from aio_pika.exceptions import ChannelClosed

    return is_transient(exc) or isinstance(exc, ChannelClosed)


async def _raw_body(msg: Any) -> bytes:
    return msg.body


def _entry(consumer: Consumer, broker: RabbitBroker) -> Callable[[], Awaitable[None]]:
    """FastStream entry point: the raw delivery; the consumer admits and acknowledges. The
    message is taken from FastStream's context, not injected by a parameter annotation,
    which FastStream would resolve on a worker thread (half its cost per message)."""
    context = broker.context

    async def handle() -> None:
        msg: RabbitMessage = context.get_local("message")
        if await consumer(msg.raw_message):
            await msg.ack()
        else:
            with contextlib.suppress(Exception):
                await msg.nack(requeue=True)

    return handle


def run(service: ServiceDef, settings: Settings | None = None) -> None:
    settings = settings or Settings()
    configure(service.name, settings.log_level)
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner,
    ):
        runner.run(Runner(service, settings).run_until_signalled())


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop (libuv: the same asyncio API, less CPU per message), or Python's."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop
