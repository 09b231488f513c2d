"""Unit of work: one database transaction holding a handler's state changes and the
events they cause (written to the outbox), committed together or not at all."""

from __future__ import annotations

from typing import Any

import asyncpg

from contracts import CloudEvent, EventData

from .outbox import enqueue, notify_channel
from .settings import Settings


class UnitOfWork:
    def __init__(
        self,
        conn: asyncpg.Connection,
        settings: Settings,
        service: str,
        correlation_id: str | None,
    ):
        self.conn = conn
        self.settings = settings
        self._names = settings.names
        self._service = service
        self._correlation_id = correlation_id
        self.emitted: list[CloudEvent[Any]] = []
        self._notified: set[str] = set()

    async def emit(self, data: EventData) -> CloudEvent[Any]:
        """Write an event to the outbox; it is published once this transaction commits."""
        event = data.envelope(
            source=self._names.source(self._service), correlationid=self._correlation_id
        )
        await enqueue(self.conn, event, self._names.events, data.routing_key())
        await self.wake("outbox")
        self.emitted.append(event)
        return event

    async def wake(self, what: str) -> None:
        """NOTIFY a poller (outbox relay, dispatcher). NOTIFY is transactional: the poller
        wakes only once this transaction commits, and at most once per transaction."""
        if what not in self._notified:
            self._notified.add(what)
            channel = notify_channel(self._names.schema(self._service), what)
            await self.conn.execute("SELECT pg_notify($1, '')", channel)
