"""The handler tier: each service's handlers on a real PostgreSQL, no broker.

Every test gets a connection inside a transaction that is rolled back at the end, on a
schema per service migrated once per session. ``Harness.send`` takes an envelope as an
outside producer or a service would publish it and runs the path a delivery takes after
the broker: admission (strict validation, origin and sender checks), then the inbox claim
and the handler, in a savepoint (a refused or failed event changes nothing, as its own
transaction would not). What the handler emitted is in ``emitted``; the rows are there to
query. ``AMQP_URL`` is never used: these pass with the broker away.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from contracts import EVENTS, CloudEvent, Direction
from services.registry import SERVICE_DEFS
from services.runtime import db, handling
from services.runtime.admission import admit
from services.runtime.delivery import Delivery
from services.runtime.handling import handle
from services.runtime.names import Names
from services.runtime.service import ServiceDef

from ..support import announced

TRUSTED = frozenset({"guest"})


@pytest.fixture(scope="session")
async def handler_database() -> AsyncIterator[tuple[str, Names]]:
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        pytest.fail("DATABASE_URL must name a PostgreSQL server", pytrace=False)
    names = Names(f"h{datetime.now(UTC):%y%m%d%H%M}{uuid.uuid4().hex[:5]}")
    for service in SERVICE_DEFS.values():
        await db.migrate(dsn, names.schema(service.name), service.migrations())
        for name, directory in service.schemas.items():
            await db.migrate(dsn, names.schema(name), db.own_migrations(directory))
    yield dsn, names
    for service in SERVICE_DEFS.values():
        for schema in service.schema_names(names):
            await db.drop_schema(dsn, schema)


class Harness:
    def __init__(
        self, service: ServiceDef, conn: asyncpg.Connection, names: Names, settings: Any = None
    ):
        self.service = service
        self.conn = conn
        self.names = names
        self.settings = settings
        self.emitted: list[CloudEvent[Any]] = []

    def uow(self, correlation_id: str | None = None) -> Any:
        return self.service.unit_of_work(self.conn, self.names, correlation_id, self.settings)

    async def send(
        self, envelope: dict[str, Any], *, user: str | None = "guest", inbound: bool = False
    ) -> list[CloudEvent[Any]]:
        """Deliver one event; returns what it emitted (also kept in ``emitted``). Raises
        what the handler raised (``BadMessage``, ``Deferred``...), having undone it.
        A ``referral.accepted.v1`` is delivered as what intake publishes beside it for
        this service (its own event: ``support.announced``), if the service takes no v1."""
        return await self.send_batch([envelope], user=user, inbound=inbound, alone=True)

    async def send_batch(
        self,
        envelopes: list[dict[str, Any]],
        *,
        user: str | None = "guest",
        inbound: bool = False,
        alone: bool = False,
    ) -> list[CloudEvent[Any]]:
        """Deliver several events in one transaction, as the runtime's batches do: the
        service's ``prepare`` first, then their units of work sharing the transaction's
        ``gathering`` (writes left to its flush), and one flush writes them all
        (``alone``: one event, handled as a single delivery is)."""
        shared = None if alone else handling.gathering()
        uows = []
        async with self.conn.transaction():  # a savepoint: as if its own transaction
            arrived = [self._admitted(envelope, user, inbound) for envelope in envelopes]
            if not alone and self.service.prepare is not None:
                uow = self.service.unit_of_work(self.conn, self.names, None, self.settings, shared)
                await self.service.prepare(uow, [(a.envelope, a.data) for _, a in arrived])
            for route, admitted in arrived:
                uow = self.service.unit_of_work(self.conn, self.names, None, self.settings, shared)
                await handle(uow, route, admitted.envelope, admitted.data)
                uows.append(uow)
            await uows[0].flush(*uows[1:])
        emitted = [e for uow in uows for e in uow.emitted]
        self.emitted += emitted
        return emitted

    def _admitted(self, envelope: dict[str, Any], user: str | None, inbound: bool) -> Any:
        if envelope["type"] not in self.service.routes:
            mine = [e for e in announced(envelope) if e["type"] in self.service.routes]
            if len(mine) == 1:
                envelope = mine[0]
        spec = EVENTS[envelope["type"]]
        if inbound or spec.model.DIRECTION is Direction.INBOUND:
            delivery = Delivery(self.names.inbound, spec.type, user_id=user)
        else:
            word = spec.model.ROUTED_BY and envelope["data"][spec.model.ROUTED_BY]
            delivery = Delivery(self.names.events, f"{spec.type}.{word}")
        models = {name: route.model for name, route in self.service.routes.items()}
        admitted = admit(
            json.dumps(envelope).encode(),
            delivery,
            names=self.names,
            service=self.service.name,
            models=models,
            trusted=TRUSTED,
        )
        return self.service.routes[spec.type], admitted

    def of(self, event_type: str) -> list[CloudEvent[Any]]:
        return [e for e in self.emitted if e.type == event_type]

    async def rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self.conn.fetch(sql, *args)

    async def value(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchval(sql, *args)


HarnessFactory = Callable[..., Any]


@pytest.fixture
async def harness(handler_database) -> AsyncIterator[HarnessFactory]:
    dsn, names = handler_database
    opened: list[tuple[asyncpg.Connection, Any]] = []

    async def make(service: str, settings: Any = None) -> Harness:
        definition = SERVICE_DEFS[service]
        conn = await asyncpg.connect(dsn, server_settings={"search_path": names.schema(service)})
        await db.init_connection(conn)
        transaction = conn.transaction()
        await transaction.start()
        opened.append((conn, transaction))
        if settings is None and definition.settings is not None:
            settings = definition.settings()
        return Harness(definition, conn, names, settings)

    yield make
    for conn, transaction in opened:
        await transaction.rollback()
        await conn.close()
