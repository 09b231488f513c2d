"""Unit of work: one database transaction holding a handler's state changes and the
events they cause (written to the outbox), committed together or not at all."""

from __future__ import annotations

from typing import Any

import asyncpg

from contracts import CloudEvent, EventData

from .names import Names
from .outbox import enqueue, notify_channel


class UnitOfWork:
    def __init__(
        self, conn: asyncpg.Connection, names: Names, service: str, correlation_id: str | None
    ):
        self.conn = conn
        self._names = names
        self._service = service
        self._correlation_id = correlation_id
        self.emitted: list[CloudEvent[Any]] = []

    async def emit(self, data: EventData) -> CloudEvent[Any]:
        """Write an event to the outbox; it is published once this transaction commits."""
        event = data.envelope(
            source=self._names.source(self._service), correlationid=self._correlation_id
        )
        await enqueue(self.conn, event, self._names.events, data.routing_key())
        if not self.emitted:
            # NOTIFY is transactional: the relay wakes only once this commits.
            await self.conn.execute(
                "SELECT pg_notify($1, '')",
                notify_channel(self._names.schema(self._service), "outbox"),
            )
        self.emitted.append(event)
        return event
