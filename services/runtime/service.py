"""A service definition and the runner that gives it a life: migrate, declare, consume,
relay the outbox, and on SIGTERM finish in-flight work before closing."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from faststream import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.schemas import Channel

from contracts import EventData

from . import db, metrics, topology
from .consumer import Consumer, Observer, RejectionBuilder, Route
from .health import HealthApp, HealthServer
from .logs import configure, get_logger
from .outbox import OutboxRelay, Poller, Publisher, notify_channel
from .settings import Settings

log = get_logger(__name__)

PollerFactory = Callable[["Runner"], Poller]


@dataclass(frozen=True)
class ServiceDef:
    name: str
    directory: Path
    routes: dict[str, Route]
    rejections: dict[str, RejectionBuilder] = field(default_factory=dict)
    pollers: tuple[PollerFactory, ...] = ()
    description: str = ""
    # after each commit, the events it emitted (for per-service counters)
    observe: Observer | None = None
    # refreshes gauges of stored state (waitlists...) from the service's own schema
    state_gauges: metrics.StateGauges | None = None

    @property
    def topology(self) -> topology.ServiceTopology:
        return topology.ServiceTopology(self.name, tuple(r.model for r in self.routes.values()))

    def migrations(self) -> list[db.Migration]:
        return db.migrations_for(self.directory)


def routes(*pairs: tuple[type[EventData], Callable[..., Awaitable[None]]]) -> dict[str, Route]:
    return {model.TYPE: Route(model, handler) for model, handler in pairs}


async def migrate(settings: Settings, service: ServiceDef) -> list[str]:
    return await db.migrate(
        settings.database_url, settings.names.schema(service.name), service.migrations()
    )


class Runner:
    def __init__(self, service: ServiceDef, settings: Settings):
        self.service = service
        self.settings = settings
        self.names = settings.names
        self.schema = self.names.schema(service.name)
        self.pool: asyncpg.Pool | None = None
        self.publisher = Publisher(settings.amqp_url, app_id=f"linkwell-{service.name}")
        self.broker: RabbitBroker | None = None
        self.pollers: list[Poller] = []
        self._stopped = False
        self._declared = False
        self._gauges: asyncio.Task[None] | None = None
        self.health: HealthServer | None = None
        if settings.http_port:
            self.health = HealthServer(
                HealthApp(service.name, self.checks()), settings.http_host, settings.http_port
            )

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
        }

    async def ready(self) -> dict[str, bool]:
        from .health import run_checks

        return await run_checks(self.checks())

    def poller_kwargs(self, what: str) -> dict[str, object]:
        return {
            "dsn": self.settings.database_url,
            "pool": self.pool,
            "channel": notify_channel(self.schema, what),
            "interval": self.settings.poll_interval,
            "batch": self.settings.outbox_batch,
        }

    async def start(self) -> None:
        if self.health is not None:  # first, so that liveness answers during start-up
            await self.health.start()
        applied = await migrate(self.settings, self.service)
        if applied:
            log.info("migrated", versions=applied)
        if self.settings.declare_topology:
            await topology.declare(self.settings, [self.service.topology])
        else:
            await self._wait_for_topology()
        self._declared = True
        self.pool = await db.create_pool(
            self.settings.database_url, self.schema, self.service.name, self.settings.db_pool_size
        )
        await self.publisher.connect()
        self.pollers = [OutboxRelay(self.publisher, **self.poller_kwargs("outbox"))]
        self.pollers += [factory(self) for factory in self.service.pollers]
        for poller in self.pollers:
            await poller.start()

        consumer = Consumer(
            service=self.service.name,
            settings=self.settings,
            pool=self.pool,
            publisher=self.publisher,
            routes=self.service.routes,
            rejections=self.service.rejections,
            observe=self.service.observe,
        )
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
            title=f"{self.service.name}",
            description=self.service.description,
        )(_entry(consumer))
        await self.broker.start()
        self._gauges = asyncio.create_task(self._refresh_gauges(), name="gauges")
        log.info("started", queue=self.names.queue(self.service.name))

    async def _wait_for_topology(self, within: float = 60.0) -> None:
        """Wait for an operator's ``linkwell topology`` to have declared our queue."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            try:
                await topology.verify(self.settings, self.service.topology)
                return
            except Exception as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(
                        f"queue {self.names.queue(self.service.name)} does not exist: "
                        "run `linkwell topology` as a broker administrator"
                    ) from exc
                log.warning("waiting_for_topology", error=type(exc).__name__)
                await asyncio.sleep(2.0)

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
        if self._gauges is not None:
            self._gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gauges
        if self.broker is not None:
            await self.broker.stop()
        for poller in self.pollers:
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
        try:
            await self.start()
            await stop.wait()
        finally:
            await self.stop()  # also after a failed start: closes whatever was opened


def _entry(consumer: Consumer) -> Callable[[RabbitMessage], Awaitable[None]]:
    """FastStream entry point: the raw message, undecoded; the consumer decodes it."""

    async def handle(msg: RabbitMessage) -> None:
        await consumer(msg)

    return handle


def run(service: ServiceDef, settings: Settings | None = None) -> None:
    settings = settings or Settings()
    configure(service.name, settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Runner(service, settings).run_until_signalled())
