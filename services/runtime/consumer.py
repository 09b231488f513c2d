"""The one path every message takes: admit, handle in one transaction, then acknowledge.

1. ``admission.admit``: a message that may not be handled (unreadable, forged, not the
   sender's to send...) is a ``BadMessage``: the sender the broker names gets a
   machine-readable rejection (through the outbox) and the message goes to the service's
   dead-letter queue with the reason. Never retried, never blocking.
2. ``handling.handle``: claim (source, id) in the inbox (a duplicate stops here), run the
   handler, which changes state and writes events to the outbox; commit.
3. Only then acknowledge. If the handler fails, ``recovery.decide`` says what next and
   ``recovery.Parking`` parks a copy (retry later, or dead-letter); the original is
   acknowledged only after the copy is confirmed; if even that fails it is handed back
   to the broker.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from contracts import BATCH_CONTENT_TYPE, CloudEvent

from . import metrics
from .admission import (
    Admitted,
    RejectionBuilder,
    admit,
    answer_to,
    default_rejection,
    event_id_of,
    printable,
)
from .answers import answer
from .batch_admission import admit_batch
from .batching import Batcher, Item, Outcome, Prepare
from .delivery import Delivery
from .errors import BadMessage
from .failpoints import failpoint
from .handling import (
    Route,
    UnitOfWorkFactory,
    correlation_for,
    from_outside,
    handle,
    transaction,
)
from .logs import bound, get_logger
from .names import Names
from .outbox import BATCHED
from .recovery import GiveUp, Parking, decide, describe
from .redaction import personal_data_of

log = get_logger(__name__)

Observer = Callable[[list[CloudEvent[Any]]], None]


class Consumer:
    def __init__(
        self,
        *,
        service: str,
        names: Names,
        pool: asyncpg.Pool,
        parking: Parking,
        routes: Mapping[str, Route],
        rejections: Mapping[str, RejectionBuilder],
        unit_of_work: UnitOfWorkFactory,
        trusted_users: frozenset[str],
        retry_delays: tuple[float, ...],
        deferred_limit: int,
        observe: Observer | None = None,
        batch_size: int = 1,
        prepare: Prepare | None = None,
    ):
        self.service = service
        self.names = names
        self.pool = pool
        self.parking = parking
        self.routes = routes
        self.models = {name: route.model for name, route in routes.items()}
        self.rejections = rejections
        self.unit_of_work = unit_of_work
        self.trusted = trusted_users
        self.retry_delays = retry_delays
        self.deferred_limit = deferred_limit
        self.observe = observe
        self.batcher = (
            Batcher(pool, unit_of_work, self.single, size=batch_size, prepare=prepare)
            if batch_size > 1
            else None
        )

    def label(self, delivery: Delivery) -> str:
        """A metrics label from a closed set: the type if this service handles it."""
        event_type = delivery.amqp_type
        if event_type is None:
            key = delivery.routing_key
            event_type = key if delivery.exchange == self.names.inbound else key.rsplit(".", 1)[0]
        return metrics.type_label(event_type, self.routes)

    async def __call__(self, raw: AbstractIncomingMessage) -> bool:
        """Handle one delivery. Never raises. True to acknowledge it (handled, parked or
        dead-lettered); False to hand it back to the broker (nothing could be done)."""
        delivery = Delivery.of(raw)
        if raw.content_type == BATCH_CONTENT_TYPE:
            return await self._batch(raw, delivery)
        with bound(routing_key=printable(delivery.routing_key, 255), attempt=delivery.attempt):
            try:
                admitted = admit(
                    raw.body,
                    delivery,
                    names=self.names,
                    service=self.service,
                    models=self.models,
                    trusted=self.trusted,
                )
            except BadMessage as exc:
                with personal_data_of((exc.raw or {}).get("data")):
                    return await self._refuse(raw, delivery, exc)
            except Exception as exc:  # admission itself failed: never stall on a message
                refusal = BadMessage("unreadable", describe(exc))
                return await self._refuse(raw, delivery, refusal)

            def personal() -> Any:
                return admitted.raw.get("data")  # parsed again only if something is redacted

            with personal_data_of(personal):
                try:
                    await self._handle(admitted.envelope, admitted.data, personal)
                except BadMessage as exc:  # refused by a handler (not the sender's to send)
                    exc.raw = admitted.raw
                    return await self._refuse(raw, delivery, exc)
                except Exception as exc:
                    return await self._recover(raw, delivery, exc)
            return True

    async def _batch(self, raw: AbstractIncomingMessage, delivery: Delivery) -> bool:
        """A message of several events (``BATCH_CONTENT_TYPE``): each admitted as if it had
        come alone, then each handled (under load, together in one transaction), and the
        message acknowledged once all are committed. One event refused refuses the message
        (dead-lettered whole, every event kept); one failure retries the message, whose
        events handled already are then duplicates the inbox drops."""
        with bound(routing_key=printable(delivery.routing_key, 255), attempt=delivery.attempt):
            try:
                events = admit_batch(
                    raw.body,
                    delivery,
                    names=self.names,
                    service=self.service,
                    models=self.models,
                    trusted=self.trusted,
                    batched=BATCHED,
                )
            except BadMessage as exc:
                return await self._refuse(raw, delivery, exc)
            except Exception as exc:  # admission itself failed: never stall on a message
                return await self._refuse(raw, delivery, BadMessage("unreadable", describe(exc)))
            results = await asyncio.gather(
                *(self._handle_one(admitted) for admitted in events), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BadMessage):
                    return await self._refuse(raw, delivery, result)
            for result in results:
                if isinstance(result, Exception):
                    return await self._recover(raw, delivery, result)
                if isinstance(result, BaseException):
                    raise result
            return True

    async def _handle_one(self, admitted: Admitted) -> None:
        def personal() -> Any:
            return admitted.raw.get("data")

        with personal_data_of(personal):
            await self._handle(admitted.envelope, admitted.data, personal)

    # -------------------------------------------------------------- handling

    async def _handle(self, event: CloudEvent[Any], data: Any, personal: Callable[[], Any]) -> None:
        started = time.perf_counter()
        correlation = correlation_for(event)
        bindings = {
            # a sender's own event id stays out of the logs (it may hold anything)
            "event_id": None if from_outside(event) else event.id,
            "event_type": event.type,
            "referral_id": _referral_id(event.subject),
            "correlation_id": correlation,
        }
        route = self.routes[event.type]
        if route.needed is not None and not route.needed(data):
            metrics.HANDLED.labels(self.service, event.type, "not_needed").inc()
            return
        item = Item(route, event, data, personal, bindings)
        with bound(**bindings):
            if self.batcher is not None:
                outcome = await self.batcher.handle(item)
            else:
                outcome = await self.single(item)
            emitted = [e.type for e in outcome.emitted]
            if not outcome.first:
                log.debug("duplicate_dropped", emitted=emitted)
                metrics.HANDLED.labels(self.service, event.type, "duplicate").inc()
                return
            log.debug("handled", emitted=emitted)
            metrics.HANDLED.labels(self.service, event.type, "handled").inc()
            metrics.LATENCY.labels(self.service, event.type).observe(time.perf_counter() - started)
            for one in outcome.emitted:
                metrics.EMITTED.labels(self.service, one.type).inc()
            if self.observe is not None and outcome.emitted:
                self.observe(outcome.emitted)

    async def single(self, item: Item) -> Outcome:
        """One delivery in a transaction of its own."""
        correlation = correlation_for(item.event)
        async with transaction(self.pool, self.unit_of_work, correlation) as uow:
            first = await handle(uow, item.route, item.event, item.data)
        failpoint("after_commit")
        return Outcome(first, uow.emitted)

    # -------------------------------------------------------------- bad input

    async def _refuse(
        self, raw: AbstractIncomingMessage, delivery: Delivery, exc: BadMessage
    ) -> bool:
        try:
            answered = await self._answer(raw, delivery, exc)
            await self.parking.dead_letter(raw, delivery, exc.reason, exc.detail)
        except Exception as failure:  # the database or broker is down: try again later
            return await self._recover(raw, delivery, failure)
        log.warning("refused", reason=exc.reason, detail=exc.detail, answered=answered)
        metrics.DEAD_LETTERED.labels(self.service, self.label(delivery), exc.reason).inc()
        failpoint("after_park")
        return True

    async def _answer(
        self, raw: AbstractIncomingMessage, delivery: Delivery, exc: BadMessage
    ) -> bool:
        """Tell the sender the broker names (``admission.answer_to``) why, once per event."""
        body = exc.raw or {}
        source = printable(body.get("source"), 256)
        sender = answer_to(self.names, self.trusted, delivery, source)
        if sender is None:
            return False
        event_id = event_id_of(exc.raw, raw.body)
        event_type = printable(body.get("type")) or delivery.amqp_type or "unknown"
        answered = {**body, "id": event_id, "type": event_type}
        build = self.rejections.get(event_type, default_rejection)
        reply = answer(build, default_rejection, answered, sender, exc.reasons)
        async with transaction(self.pool, self.unit_of_work, None) as uow:
            await uow.emit(reply)
        return True

    # -------------------------------------------------------------- failures

    async def _recover(
        self, raw: AbstractIncomingMessage, delivery: Delivery, exc: Exception
    ) -> bool:
        detail = describe(exc)
        label = self.label(delivery)
        metrics.FAILED.labels(self.service, label).inc()
        decision = decide(exc, delivery, self.retry_delays, self.deferred_limit)
        try:
            if isinstance(decision, GiveUp):
                await self.parking.dead_letter(
                    raw, delivery, decision.reason, detail, delivery.attempts_made
                )
                log.error("dead_lettered", reason=decision.reason, error=detail)
                metrics.DEAD_LETTERED.labels(self.service, label, decision.reason).inc()
            else:
                await self.parking.retry(raw, decision, detail)
                kind = "wait" if decision.waiting else "retry"
                metrics.RETRIED.labels(self.service, label, kind).inc()
                (log.warning if decision.waiting else log.error)(
                    "retry_scheduled",
                    delay=decision.delay,
                    error=detail,
                    waiting=decision.waiting,
                    exc_info=not decision.waiting,
                )
        except Exception:
            # Could not park the message anywhere: hand it back to the broker unacked.
            log.exception("requeue_after_failure")
            return False
        failpoint("after_park")
        return True


def _referral_id(subject: str | None) -> str | None:
    """Bind a subject to logs only if it is a referral id: senders choose subjects."""
    try:
        return str(uuid.UUID(subject)) if subject else None
    except ValueError:
        return None
