"""Handling deliveries in batches: under load, the deliveries waiting to be handled share
one transaction (one BEGIN and COMMIT, one inbox statement, one outbox statement, one
WAL flush) instead of one each (``docs/architecture/batching.md``).

Every delivery still gets exactly the guarantees of the one-at-a-time path: it is
acknowledged only after the transaction holding its effects commits; a crash anywhere
before that leaves it to be delivered again, and the inbox drops what was committed. If
any handler of a batch fails, the whole batch is rolled back and each of its deliveries is
handled again on its own, in its own transaction, where a failure is the one-at-a-time
path's business (retry, refusal, dead letter). Nothing waits for a batch to fill: a
delivery that arrives when no batch is running starts one at once, so a quiet service
handles each delivery as before, and batches form only when deliveries queue up.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from contracts import CloudEvent

from .failpoints import failpoint
from .handling import Route, UnitOfWorkFactory, correlation_for, gathering
from .inbox import claim_many
from .logs import bound
from .redaction import personal_data_of


@dataclass
class Item:
    route: Route
    event: CloudEvent[Any]
    data: Any
    personal: Callable[[], Any]  # the message's data, for redacting its personal values
    log: dict[str, Any] = field(default_factory=dict)  # what its log lines are bound to
    done: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True)
class Outcome:
    first: bool  # False: a duplicate
    emitted: list[CloudEvent[Any]]


@contextlib.contextmanager
def as_itself(item: Item) -> Iterator[None]:
    """Logs bound to this delivery, and its personal values redacted, while it is handled."""
    with (
        bound(**item.log),
        personal_data_of(item.personal),
    ):
        yield


Single = Callable[[Item], Awaitable[Outcome]]
# Run once a batch's events are claimed, before its handlers, with the unit of work of the
# batch's transaction and the events handled for the first time: to read or lock in one
# statement what the handlers would each read or lock on their own, keeping it in
# ``uow.shared`` for them (``ServiceDef.prepare``). It emits nothing.
Prepare = Callable[[Any, list[tuple[CloudEvent[Any], Any]]], Awaitable[None]]


class Batcher:
    """Collects admitted deliveries and handles them together, ``workers`` batches at a
    time, at most ``size`` deliveries each."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        unit_of_work: UnitOfWorkFactory,
        single: Single,
        *,
        size: int,
        workers: int = 2,
        prepare: Prepare | None = None,
    ):
        self.pool = pool
        self.unit_of_work = unit_of_work
        self.single = single
        self.size = size
        self.workers = workers
        self.prepare = prepare
        self.waiting: list[Item] = []
        self.running = 0
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps tasks only weakly
        # batches run in a context of their own (the service's, no delivery's): each item's
        # log bindings and personal values are set around its own handling
        self.context = contextvars.copy_context()

    async def handle(self, item: Item) -> Outcome:
        """Handle one delivery, with whatever else is waiting; raises what its handler
        raised (when handled on its own)."""
        self.waiting.append(item)
        if self.running < self.workers:
            self.running += 1
            task = asyncio.get_running_loop().create_task(
                self._drain(), context=self.context.copy()
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await item.done

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[: self.size], self.waiting[self.size :]
                if len(batch) == 1:
                    await self._alone(batch[0])
                else:
                    await self._together(batch)
        finally:
            self.running -= 1

    async def _alone(self, item: Item) -> None:
        try:
            with as_itself(item):
                item.done.set_result(await self.single(item))
        except BaseException as exc:  # handed to the delivery's own recovery
            item.done.set_exception(exc)

    async def _together(self, batch: list[Item]) -> None:
        try:
            outcomes = await self._in_one_transaction(batch)
        except Exception:
            for item in batch:  # roll back all; each again on its own
                await self._alone(item)
            return
        failpoint("after_commit")
        for item, outcome in zip(batch, outcomes, strict=True):
            item.done.set_result(outcome)

    async def _in_one_transaction(self, batch: list[Item]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        uows = []
        # this transaction's, for all its units of work; they may leave writes to its flush
        shared = gathering()
        async with self.pool.acquire() as conn, conn.transaction():
            keys = [(i.event.source, i.event.id, i.event.type) for i in batch]
            claimed = await claim_many(conn, keys)
            failpoint("after_claim")
            if self.prepare is not None:
                await self._prepare(conn, shared, batch, claimed)
            for n, item in enumerate(batch):
                uow = self.unit_of_work(conn, correlation_for(item.event), shared)
                key = (item.event.source, item.event.id)
                first = key in claimed
                claimed.discard(key)  # the same event twice in one batch: the second is a copy
                with as_itself(item):
                    if first:
                        await item.route.handler(uow, item.event, item.data)
                    elif item.route.on_duplicate is not None:
                        await item.route.on_duplicate(uow, item.event, item.data)
                uows.append(uow)
                outcomes.append(Outcome(first, uow.emitted))
                if n == len(batch) // 2:
                    failpoint("mid_batch")
            if uows:
                await uows[0].flush(*uows[1:])  # every event of the batch, in one statement
            failpoint("before_commit")
        return outcomes

    async def _prepare(
        self,
        conn: asyncpg.Connection,
        shared: dict[str, Any],
        batch: list[Item],
        claimed: set[tuple[str, str]],
    ) -> None:
        assert self.prepare is not None
        uow = self.unit_of_work(conn, None, shared)
        seen: set[tuple[str, str]] = set()
        first = []
        for item in batch:
            key = (item.event.source, item.event.id)
            if key in claimed and key not in seen:
                seen.add(key)
                first.append((item.event, item.data))
        await self.prepare(uow, first)
        assert uow.mark() == (0, 0, 0), "a batch's preparation emits nothing"
