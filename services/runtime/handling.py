"""The handling transaction: claim the event in the inbox, run the handler, commit; the
unit of work a handler is given to load, save and emit through.

Everything a handler changes and every event it emits (written to the outbox) commit
together or not at all; the message is acknowledged only after the commit, so a crash at
any line leaves it to be delivered again, and the inbox makes that harmless
(``docs/architecture/inbox.md``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import asyncpg

from contracts import CloudEvent, EventData
from contracts.envelope import ORG_SOURCE_PREFIX

from . import audit, early
from .failpoints import failpoint
from .inbox import claim
from .names import Names
from .outbox import enqueue_many
from .poller import notify_channel

AUDIT_TYPE = "audit.recorded.v1"
# in ``UnitOfWork.shared``: the writes its flush runs (present only in a batch's, ``gathering``)
_AT_FLUSH = "runtime.at_flush"

S = TypeVar("S")
Handler = Callable[["UnitOfWork[Any]", CloudEvent[Any], Any], Awaitable[None]]


class UndeclaredEvent(Exception):
    """A handler emitted a type its service does not declare (``ServiceDef.emits``)."""


@dataclass(frozen=True)
class Route:
    model: type[EventData]
    handler: Handler
    # called instead of ``handler`` when the event was handled before (a resend)
    on_duplicate: Handler | None = None
    # False for an event the handler would do nothing with (``only_when``)
    needed: Callable[[Any], bool] | None = None


H = TypeVar("H", bound=Handler)


def only_when(needed: Callable[[Any], bool]) -> Callable[[H], H]:
    """A handler that changes nothing unless ``needed(data)``: an event it does not need is
    acknowledged at once, with no transaction (nothing to claim, nothing to change, nothing
    to emit), where it would otherwise cost a transaction and an inbox row."""

    def mark(handler: H) -> H:
        handler.needed = needed  # type: ignore[attr-defined]
        return handler

    return mark


class UnitOfWork(Generic[S]):
    """One transaction: ``store`` (the service's named queries on it), ``emit`` to the
    outbox, ``wake`` a poller after commit.

    ``shared`` is what the handlers of one transaction keep for each other (a batch's
    units of work share one dict, ``batching``); every new transaction starts with a
    fresh one, so nothing in it outlives the transaction it was learnt in."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        *,
        names: Names,
        service: str,
        store: S,
        emits: Collection[str],
        correlation_id: str | None,
        settings: Any = None,
        routes: Mapping[str, Route] | None = None,
        shared: dict[str, Any] | None = None,
    ):
        self.conn = conn
        self.shared: dict[str, Any] = {} if shared is None else shared
        self.routes = routes or {}
        self.store = store
        self.settings = settings
        self.names = names
        self.service = service
        self._emits = emits
        self.correlation_id = correlation_id
        self.emitted: list[CloudEvent[Any]] = []
        # the audit.recorded.v1 written with them (kept apart: they are the record, not the effect)
        self.audited: list[CloudEvent[Any]] = []
        self._notified: set[str] = set()
        self._unsent: list[tuple[CloudEvent[Any], str]] = []

    async def emit(self, data: EventData) -> CloudEvent[Any]:
        """An event for the outbox; it is published once this transaction commits. (Written
        with every other event of the transaction, in one statement, by ``flush``.)"""
        if data.TYPE not in self._emits:
            raise UndeclaredEvent(f"{self.service} does not declare that it emits {data.TYPE}")
        event = data.envelope(
            source=self.names.source(self.service), correlationid=self.correlation_id
        )
        self._unsent.append((event, data.routing_key()))
        if data.TYPE == AUDIT_TYPE:
            self.audited.append(event)
            return event
        self.emitted.append(event)
        if AUDIT_TYPE in self._emits:
            # what leaves Linkwell for an organisation is recorded in this same transaction
            record = audit.of_emitted(event, data, self.service)
            if record is not None:
                await self.emit(record)
        return event

    def mark(self) -> tuple[int, int, int]:
        """Where the events emitted so far end (to undo what follows, with a savepoint)."""
        return len(self._unsent), len(self.emitted), len(self.audited)

    def rewind(self, mark: tuple[int, int, int]) -> None:
        """Forget the events emitted since ``mark`` (their savepoint was rolled back)."""
        del self._unsent[mark[0] :]
        del self.emitted[mark[1] :]
        del self.audited[mark[2] :]

    @property
    def gathers(self) -> bool:
        """Whether this transaction's flush runs the writes given to ``at_flush`` (a batch's,
        ``gathering``); a delivery handled alone writes at once instead."""
        return _AT_FLUSH in self.shared

    def at_flush(self, key: str, write: Callable[[], Awaitable[object]]) -> None:
        """Have ``write`` run once, by this transaction's ``flush`` (after its last handler,
        before the commit), for what its handlers gathered in ``shared`` to write in one
        statement; ``key`` names it, and only its first registration counts. Only in a
        transaction that ``gathers``. (Not for a handler that ``early.release`` runs in a
        savepoint: what it gathered would outlive a rollback of the savepoint.)"""
        self.shared[_AT_FLUSH].setdefault(key, write)

    async def flush(self, *others: UnitOfWork[Any]) -> None:
        """Run the writes the handlers left for the flush (``at_flush``), then write the
        events emitted so far to the outbox (before the commit), with those of ``others``
        (units of work of the same transaction, a batch's) after them, in order, in one
        statement."""
        writes = self.shared.get(_AT_FLUSH)
        while writes:
            await writes.pop(next(iter(writes)))()
        unsent: list[tuple[CloudEvent[Any], str]] = []
        for uow in (self, *others):
            unsent += uow._unsent
            uow._unsent = []
        if unsent:
            await enqueue_many(self.conn, self.names.events, unsent, self._to_wake("outbox"))

    async def serialise(self, referral_id: uuid.UUID) -> None:
        """Lock the referral id, known or not, until the transaction ends (``early``)."""
        await early.serialise(self, referral_id)

    async def hold(self, referral_id: uuid.UUID, event: CloudEvent[Any]) -> None:
        """Keep an event about a referral not known yet, until it is (``early``)."""
        await early.hold(self, referral_id, event)

    async def release(self, referral_id: uuid.UUID, taken: list[Any] | None = None) -> int:
        """Handle the events held for a referral that is now known; how many (``early``;
        ``taken``: those its making known took out already)."""
        return await early.release(self, referral_id, taken)

    async def wake(self, what: str) -> None:
        """NOTIFY a poller (outbox relay, dispatcher). NOTIFY is transactional: the poller
        wakes only once this transaction commits, and at most once per transaction."""
        channel = self._to_wake(what)
        if channel is not None:
            await self.conn.execute("SELECT pg_notify($1, '')", channel)

    def _to_wake(self, what: str) -> str | None:
        """The channel to NOTIFY, the first time in this transaction; else None."""
        if what in self._notified:
            return None
        self._notified.add(what)
        return notify_channel(self.names.schema(self.service), what)


def from_outside(event: CloudEvent[Any]) -> bool:
    """Whether an organisation, not a Linkwell service, sent the event."""
    return not event.source.startswith("urn:linkwell:") or event.source.startswith(
        ORG_SOURCE_PREFIX
    )


def correlation_for(event: CloudEvent[Any]) -> str:
    """The chain's id in every log and downstream event: an inside event's own correlation
    id; for an event from outside, an id derived from its (source, id), so that a sender's
    choice of id (which may hold anything) never travels into other services' logs."""
    if not from_outside(event):
        return event.correlationid or event.id
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{event.source}#{event.id}"))


def gathering() -> dict[str, Any]:
    """A fresh ``shared`` dict for a transaction that ``gathers``: one whose handlers are
    followed by one ``flush`` (a batch's), which runs what they left for it."""
    return {_AT_FLUSH: {}}


class UnitOfWorkFactory(Protocol):
    """A unit of work on ``conn``'s open transaction; ``shared`` given, it shares that
    transaction's dict with the others made for it (else it gets a fresh one)."""

    def __call__(
        self,
        conn: asyncpg.Connection,
        correlation_id: str | None,
        /,
        shared: dict[str, Any] | None = None,
    ) -> UnitOfWork[Any]: ...


@contextlib.asynccontextmanager
async def transaction(
    pool: asyncpg.Pool, make: UnitOfWorkFactory, correlation_id: str | None
) -> AsyncIterator[UnitOfWork[Any]]:
    async with pool.acquire() as conn, conn.transaction():
        uow = make(conn, correlation_id)
        yield uow
        await uow.flush()


async def handle(uow: UnitOfWork[Any], route: Route, event: CloudEvent[Any], data: Any) -> bool:
    """Claim the event and run its handler inside ``uow``'s open transaction. False if it
    was handled before (then only ``on_duplicate`` runs, if the route has one)."""
    if not await claim(uow.conn, event.source, event.id, event.type):
        if route.on_duplicate is not None:
            await route.on_duplicate(uow, event, data)
        return False
    failpoint("after_claim")
    await route.handler(uow, event, data)
    failpoint("before_commit")
    return True
