"""A service definition: what a service consumes (its routes), what it emits, and the
parts the runner gives a life (store, pollers, gauges). Declared here, then enforced:
emitting an undeclared type fails, and broker permissions, AsyncAPI documents and the
README's type table are generated from these declarations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg

from contracts import EVENTS, Direction, EventData
from contracts.events import EventRejected

from . import db
from .admission import RejectionBuilder
from .handling import Handler, Route, UnitOfWork
from .names import Names
from .retention import Rule
from .topology import ServiceTopology

if TYPE_CHECKING:
    from .batching import Prepare
    from .consumer import Observer
    from .poller import Poller
    from .runner import Runner

PollerFactory = Callable[["Runner"], "Poller"]


class Part(Protocol):
    """Something the runner starts and stops with the service (a web server); its
    ``ready`` is one of the service's readiness checks, under its ``name``."""

    name: str

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def ready(self) -> bool: ...


PartFactory = Callable[["Runner"], Part]
StateGauges = Callable[[asyncpg.Connection], Awaitable[None]]


@dataclass(frozen=True)
class ServiceDef:
    name: str
    directory: Path
    description: str
    routes: dict[str, Route]  # what it consumes
    emits: tuple[type[EventData], ...]  # what it may emit
    store: Callable[[asyncpg.Connection], Any] = lambda conn: None
    rejections: dict[str, RejectionBuilder] = field(default_factory=dict)
    pollers: tuple[PollerFactory, ...] = ()
    # after each commit, the events it emitted (for per-service counters)
    observe: Observer | None = None
    # refreshes gauges of stored state (waitlists...) from the service's own schema
    state_gauges: StateGauges | None = None
    # the service's own settings (pydantic-settings), beside the shared ones
    settings: Callable[[], Any] | None = None
    # takes inbound messages no service binds, to answer their senders (intake)
    answers_unrouted: bool = False
    # more schemas the service owns, by name (schema <ns>_<name>), each with its migrations
    schemas: dict[str, Path] = field(default_factory=dict)
    # the routing words its emitted-type bindings are limited to (the gateway: the
    # organisations it serves, from its settings); None: any
    routing_words: Callable[[], tuple[str, ...]] | None = None
    # servers started once it consumes and stopped first (the gateway's pages)
    servers: tuple[PartFactory, ...] = ()
    # inbound types it publishes to <ns>.inbound as the organisations it serves (the
    # gateway: its routing words), with its broker user as the AMQP user_id
    publishes: tuple[type[EventData], ...] = ()
    # its retention rules, run with the runtime's own (services/runtime/retention.py)
    retention: tuple[Rule, ...] = ()
    # run at the start of each batch, with the events it handles for the first time
    # (``batching.Prepare``): what its handlers would each read or lock, in one statement
    prepare: Prepare | None = None

    def __post_init__(self) -> None:
        for model in self.emits:
            if EVENTS.get(model.TYPE) is None or model.DIRECTION is not Direction.EMITTED:
                raise ValueError(f"{self.name} declares it emits {model.TYPE}, not an emitted type")
        if EventRejected not in self.emits:
            raise ValueError(f"{self.name} must declare {EventRejected.TYPE}: it answers senders")
        from .audit import DISCLOSED

        told = sorted(m.TYPE for m in self.emits if m.TYPE in DISCLOSED and m is not EventRejected)
        if told and "audit.recorded.v1" not in self.emitted_types:
            raise ValueError(
                f"{self.name} emits {', '.join(told)} to organisations: it must declare "
                "audit.recorded.v1 (each disclosure is recorded in its transaction)"
            )
        for model in self.publishes:
            if model.DIRECTION is not Direction.INBOUND or self.routing_words is None:
                raise ValueError(f"{self.name} may publish {model.TYPE} only for its organisations")
        for event_type in self.routes:
            if event_type not in EVENTS:
                raise ValueError(f"{self.name} consumes {event_type}, which is not in the contract")

    @property
    def consumes(self) -> tuple[type[EventData], ...]:
        return tuple(r.model for r in self.routes.values())

    @property
    def emitted_types(self) -> frozenset[str]:
        return frozenset(m.TYPE for m in self.emits)

    @property
    def topology(self) -> ServiceTopology:
        words = self.routing_words() if self.routing_words is not None else None
        return ServiceTopology(self.name, self.consumes, self.answers_unrouted, words)

    def schema_names(self, names: Names) -> list[str]:
        """Every database schema the service owns."""
        return [names.schema(self.name), *(names.schema(n) for n in self.schemas)]

    def migrations(self) -> list[db.Migration]:
        return db.migrations_for(self.directory)

    def unit_of_work(
        self,
        conn: asyncpg.Connection,
        names: Names,
        correlation_id: str | None = None,
        settings: Any = None,
        shared: dict[str, Any] | None = None,
    ) -> UnitOfWork[Any]:
        """A unit of work on ``conn``'s open transaction, as the runner gives handlers
        (``shared``: the transaction's, when several units of work share it)."""
        return UnitOfWork(
            conn,
            names=names,
            service=self.name,
            store=self.store(conn),
            emits=self.emitted_types,
            correlation_id=correlation_id,
            settings=settings,
            routes=self.routes,
            shared=shared,
        )


def routes(*entries: tuple[Any, ...]) -> dict[str, Route]:
    """``routes((Model, handler), (Model, handler, on_duplicate), ...)``."""
    out: dict[str, Route] = {}
    for model, handler, *rest in entries:
        on_duplicate: Handler | None = rest[0] if rest else None
        out[model.TYPE] = Route(model, handler, on_duplicate, getattr(handler, "needed", None))
    return out
