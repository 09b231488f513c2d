"""The one path every message takes: decode, dispatch, commit, then acknowledge.

1. Decode the CloudEvents envelope and validate ``data`` against the type's model. A
   message that cannot be read is a ``BadMessage``: an outside sender gets a
   machine-readable rejection (through the outbox) and the message goes to the
   service's dead-letter queue with the reason. Never retried, never blocking. Inbound
   types are accepted only from the inbound exchange with the type as routing key, and
   Linkwell's own types only from the events exchange, so nobody outside can pass a
   forged internal event through an inbound binding.
2. In one transaction: claim (source, id) in the inbox (a duplicate stops here), run
   the handler, which changes state and writes events to the outbox; commit.
3. Only then acknowledge. If the handler fails, a copy goes to a delay queue and comes
   back after a pause (0.5 s, 5 s, 30 s by default); when those are spent it is
   dead-lettered with the reason. Infrastructure errors wait, backing off, without
   spending the budget; an event waiting for another (``Deferred``) has a longer budget
   of its own. The original is acknowledged only after the copy is confirmed.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from faststream.rabbit.message import RabbitMessage
from pydantic import ValidationError

from contracts import (
    EVENTS,
    CloudEvent,
    Direction,
    EventData,
    RawEvent,
    org_from_source,
    org_source,
)
from contracts.enums import RejectionCode
from contracts.events import EventRejected, Reason
from contracts.rejections import reasons_from

from . import metrics
from .errors import BadMessage, Deferred, is_transient
from .failpoints import failpoint
from .inbox import claim
from .logs import get_logger, personal_data, personal_values, redact
from .names import Names
from .outbox import Publisher
from .settings import Settings
from .uow import UnitOfWork

log = get_logger(__name__)

HEADER = "x-linkwell-"
ATTEMPT_HEADER = f"{HEADER}attempt"  # failed handling attempts so far
WAITS_HEADER = f"{HEADER}waits"  # waits for infrastructure or a missing dependency
ORIGIN_EXCHANGE = f"{HEADER}original-exchange"
ORIGIN_KEY = f"{HEADER}original-routing-key"
USER_HEADER = f"{HEADER}user-id"  # the broker-validated publisher, kept across retries

Handler = Callable[[UnitOfWork, CloudEvent[Any], Any], Awaitable[None]]
Observer = Callable[[list[CloudEvent[Any]]], None]
RejectionBuilder = Callable[[dict[str, Any], str, list[Reason]], EventData]


@dataclass(frozen=True)
class Route:
    model: type[EventData]
    handler: Handler


@dataclass(frozen=True)
class Delivery:
    """Where a message was first published, by whom, and how often it has been tried.
    ``user_id`` is the AMQP user id, which the broker checks against the publishing
    connection's user. Our own headers are trusted only on messages coming back from our
    delay queues or a replay (through the default exchange, which no organisation may
    publish to); on anything published from outside they are ignored."""

    exchange: str
    routing_key: str
    attempt: int = 0
    waits: int = 0
    user_id: str | None = None
    # dead-lettered into this exchange from some other queue rather than published to it
    forwarded: bool = False

    @classmethod
    def of(cls, msg: RabbitMessage) -> Delivery:
        raw = msg.raw_message
        if raw.exchange:
            return cls(
                raw.exchange,
                raw.routing_key or "",
                user_id=raw.user_id or None,
                forwarded="x-death" in (msg.headers or {}),
            )
        headers = msg.headers or {}
        user = headers.get(USER_HEADER)
        return cls(
            str(headers.get(ORIGIN_EXCHANGE, "")),
            str(headers.get(ORIGIN_KEY, "")),
            _count(headers.get(ATTEMPT_HEADER)),
            _count(headers.get(WAITS_HEADER)),
            str(user) if user else None,
        )

    def headers(self, original: dict[str, Any], **extra: Any) -> dict[str, Any]:
        kept = {k: v for k, v in original.items() if not str(k).startswith(HEADER)}
        identity = {USER_HEADER: self.user_id} if self.user_id else {}
        return {
            **kept,
            ATTEMPT_HEADER: self.attempt,
            WAITS_HEADER: self.waits,
            ORIGIN_EXCHANGE: self.exchange,
            ORIGIN_KEY: self.routing_key,
            **identity,
            **extra,
        }

    def retried(self, *, attempt: int = 0, waits: int = 0) -> Delivery:
        return Delivery(
            self.exchange,
            self.routing_key,
            self.attempt + attempt,
            self.waits + waits,
            self.user_id,
        )


def _count(value: object) -> int:
    try:
        return max(int(value), 0)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def default_rejection(raw: dict[str, Any], sender: str, reasons: list[Reason]) -> EventData:
    return EventRejected(
        rejected_event_id=str(raw.get("id")),
        rejected_type=_printable(raw.get("type")),
        sender=sender,
        reasons=reasons,
        rejected_at=datetime.now(UTC),
    )


def _printable(value: object, limit: int = 128) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= limit and value.isprintable():
        return value
    return None


class _NotJson:
    def __init__(self, error: str):
        self.error = error


def _load_json(body: bytes) -> Any:
    """The parsed body, or a ``_NotJson`` saying why it is not JSON."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return _NotJson(type(exc).__name__)  # RecursionError: nested beyond reason


def _referral_id(subject: str | None) -> str | None:
    """Bind a subject to logs only if it is a referral id: senders choose subjects."""
    try:
        return str(uuid.UUID(subject)) if subject else None
    except ValueError:
        return None


def check_origin(names: Names, delivery: Delivery, event_type: str) -> str | None:
    """Why this type may not arrive this way, or None if it may."""
    if delivery.forwarded:  # a queue's dead-lettering skips the broker's publish checks
        return f"{event_type} was dead-lettered into {delivery.exchange}, not published to it"
    spec = EVENTS.get(event_type)
    if delivery.exchange == names.inbound:
        if spec is None or spec.model.DIRECTION is not Direction.INBOUND:
            return f"{event_type} may not be published to {names.inbound}"
        if delivery.routing_key != event_type:
            return f"routing key must be the type, {event_type}"
        return None
    if delivery.exchange == names.events:
        if spec is None or spec.model.DIRECTION is not Direction.EMITTED:
            return f"{event_type} is not a Linkwell event"
        if not delivery.routing_key.startswith(f"{event_type}."):
            return f"routing key does not match {event_type}"
        return None
    return f"arrived from unknown exchange {delivery.exchange!r}"


def check_sender(trusted: frozenset[str], user_id: str | None, source: str) -> Reason | None:
    """Why an inbound event may not claim this ``source``, or None if it may. The broker
    vouches for ``user_id`` (it refuses a message whose user id is not the publishing
    connection's user); an organisation's broker username is its organisation code.
    Trusted users (Linkwell's own operators, local development) may speak for anyone."""
    if user_id is not None and user_id in trusted:
        return None
    if user_id is None:
        return Reason(
            code=RejectionCode.SENDER_UNVERIFIED,
            message="set the AMQP user_id property to your broker username, so that the "
            "broker vouches for the sender",
            field="user_id",
        )
    if org_from_source(source) != user_id:
        return Reason(
            code=RejectionCode.SOURCE_MISMATCH,
            message=f"source must be {org_source(user_id)} for broker user {user_id}",
            field="source",
        )
    return None


class Consumer:
    def __init__(
        self,
        *,
        service: str,
        settings: Settings,
        pool: asyncpg.Pool,
        publisher: Publisher,
        routes: dict[str, Route],
        rejections: dict[str, RejectionBuilder],
        observe: Observer | None = None,
    ):
        self.service = service
        self.settings = settings
        self.names = settings.names
        self.pool = pool
        self.publisher = publisher
        self.routes = routes
        self.rejections = rejections
        self.observe = observe

    def type_of(self, msg: RabbitMessage, delivery: Delivery) -> str | None:
        """The event type without decoding: the AMQP type, else the routing key's."""
        if msg.raw_message.type:
            return msg.raw_message.type
        if delivery.exchange == self.names.inbound:
            return delivery.routing_key
        return delivery.routing_key.rsplit(".", 1)[0]

    def label(self, event_type: str | None) -> str:
        """A metrics label: the type if this service handles it, else "other"."""
        return metrics.type_label(event_type, self.routes)

    # -------------------------------------------------------------- entry point

    async def __call__(self, msg: RabbitMessage) -> None:
        """Never raises: every path ends in ack (done, parked or dead-lettered) or, if even
        parking fails, in a nack that hands the message back to the broker."""
        delivery = Delivery.of(msg)
        raw = _load_json(msg.body)
        personal = personal_values(raw.get("data")) if isinstance(raw, dict) else set()
        with (
            structlog.contextvars.bound_contextvars(
                message_id=msg.message_id,
                routing_key=delivery.routing_key,
                attempt=delivery.attempt,
            ),
            personal_data(personal),  # this message's names, birth date... never logged
        ):
            try:
                await self._handle(msg, delivery, raw)
            except BadMessage as exc:
                await self._reject_bad(msg, delivery, exc, raw)
                return
            except Exception as exc:
                await self._park_or_dead_letter(msg, delivery, exc)
                return
            await msg.ack()

    # -------------------------------------------------------------- happy path

    def decode(self, raw: Any, delivery: Delivery) -> tuple[CloudEvent[Any], Route, Any]:
        if isinstance(raw, _NotJson):
            raise BadMessage("not_json", f"body is not JSON ({raw.error})")
        try:
            envelope = RawEvent.model_validate(raw)
        except ValidationError as exc:
            raise _invalid("envelope_invalid", RejectionCode.ENVELOPE_INVALID, exc, raw) from None
        refusal = check_origin(self.names, delivery, envelope.type)
        route = self.routes.get(envelope.type)
        if refusal is None and route is None:
            refusal = f"{self.service} does not handle {envelope.type}"
        if refusal is not None or route is None:
            reason = Reason(code=RejectionCode.UNSUPPORTED_TYPE, message=refusal, field="type")
            raise _Unreadable("unsupported_type", refusal or "", raw, [reason])
        if delivery.exchange == self.names.inbound:
            wrong = check_sender(self.settings.trusted_users, delivery.user_id, envelope.source)
            if wrong is not None:
                raise _Unreadable(wrong.code.value, wrong.message, raw, [wrong])
        try:
            data = route.model.model_validate(envelope.data)
        except ValidationError as exc:
            raise _invalid(
                "schema_invalid", RejectionCode.SCHEMA_INVALID, exc, raw, "data."
            ) from None
        return envelope, route, data

    async def _handle(self, msg: RabbitMessage, delivery: Delivery, raw: Any) -> None:
        started = time.perf_counter()
        envelope, route, data = self.decode(raw, delivery)
        with structlog.contextvars.bound_contextvars(
            event_id=envelope.id,
            event_type=envelope.type,
            referral_id=_referral_id(envelope.subject),
            correlation_id=envelope.correlationid or envelope.id,
        ):
            async with self.transaction(envelope.correlationid or envelope.id) as uow:
                if not await claim(uow.conn, envelope.source, envelope.id, envelope.type):
                    log.info("duplicate_dropped")
                    metrics.HANDLED.labels(self.service, envelope.type, "duplicate").inc()
                    return
                failpoint("after_claim")
                await route.handler(uow, envelope, data)
                failpoint("before_commit")
            failpoint("after_commit")
            log.info("handled", emitted=[e.type for e in uow.emitted])
            metrics.HANDLED.labels(self.service, envelope.type, "handled").inc()
            metrics.LATENCY.labels(self.service, envelope.type).observe(
                time.perf_counter() - started
            )
            for event in uow.emitted:
                metrics.EMITTED.labels(self.service, event.type).inc()
            if self.observe is not None and uow.emitted:
                self.observe(uow.emitted)

    @contextlib.asynccontextmanager
    async def transaction(self, correlation_id: str | None) -> AsyncIterator[UnitOfWork]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield UnitOfWork(conn, self.settings, self.service, correlation_id)

    # -------------------------------------------------------------- bad input

    async def _reject_bad(
        self, msg: RabbitMessage, delivery: Delivery, exc: BadMessage, raw: Any
    ) -> None:
        reasons = exc.reasons
        try:
            answered = await self._answer(raw, reasons, delivery)
            await self._dead_letter(msg, delivery, exc.reason, exc.detail)
        except Exception as failure:  # the database or broker is down: try again later
            await self._park_or_dead_letter(msg, delivery, failure)
            return
        log.warning("bad_message", reason=exc.reason, detail=exc.detail, answered=answered)
        metrics.DEAD_LETTERED.labels(
            self.service,
            self.label(_printable(raw.get("type")) if isinstance(raw, dict) else None),
            exc.reason,
        ).inc()
        failpoint("after_park")
        await msg.ack()

    def answer_to(self, delivery: Delivery, source: str | None) -> str | None:
        """Who hears of a rejection: the organisation the broker says published it; the
        claimed source only if the publisher is trusted or did not say who it is (an
        honest sender who forgot ``user_id`` hears why; a spoofer's victim is never told
        of what it did not send when the broker knows better)."""
        user = delivery.user_id
        if (
            delivery.exchange != self.names.inbound
            or not user
            or user in self.settings.trusted_users
        ):
            return org_from_source(source)
        return org_from_source(org_source(user))  # None for a user that is not an organisation

    async def _answer(self, raw: Any, reasons: list[Reason], delivery: Delivery) -> bool:
        """Send the sender a rejection, once per (source, id), if the sender can be named."""
        if not isinstance(raw, dict) or not reasons:
            return False
        source, event_id = _printable(raw.get("source"), 256), _printable(raw.get("id"))
        sender = self.answer_to(delivery, source)
        if sender is None or source is None or event_id is None:
            return False
        event_type = _printable(raw.get("type")) or "unknown"
        build = self.rejections.get(event_type, default_rejection)
        async with self.transaction(event_id) as uow:
            if await claim(uow.conn, source, event_id, event_type):
                await uow.emit(build(raw, sender, reasons))
        return True

    # -------------------------------------------------------------- failures

    async def _park_or_dead_letter(
        self, msg: RabbitMessage, delivery: Delivery, exc: Exception
    ) -> None:
        delays = self.settings.retry_delays
        detail = f"{type(exc).__name__}: {redact(str(exc))[:500]}"
        label = self.label(self.type_of(msg, delivery))
        metrics.FAILED.labels(self.service, label).inc()
        waiting = is_transient(exc) or (
            isinstance(exc, Deferred) and delivery.waits < self.settings.deferred_limit
        )
        try:
            if waiting:  # not the message's fault: wait, backing off, budget untouched
                step = min(delivery.waits, len(delays) - 1)
                parked = delivery.retried(waits=1)
            elif not isinstance(exc, Deferred) and delivery.attempt < len(delays):
                step = delivery.attempt
                parked = delivery.retried(attempt=1)
            else:
                reason = "dependency_missing" if isinstance(exc, Deferred) else "handler_failed"
                await self._dead_letter(msg, delivery, reason, detail, delivery.attempt + 1)
                log.error("dead_lettered", reason=reason, error=detail)
                metrics.DEAD_LETTERED.labels(self.service, label, reason).inc()
                step = -1
            if step >= 0:
                await self.publisher.publish(
                    self.names.retry_exchange(self.service),
                    self.names.retry_queue(self.service, delays[step]),
                    msg.body,
                    message_id=msg.message_id or "",
                    correlation_id=msg.correlation_id,
                    event_type=msg.raw_message.type,
                    headers=parked.headers(
                        dict(msg.headers or {}), **{f"{HEADER}last-error": detail}
                    ),
                    mandatory=True,
                )
                metrics.RETRIED.labels(self.service, label, "wait" if waiting else "retry").inc()
                quiet = waiting
                (log.warning if quiet else log.error)(
                    "retry_scheduled",
                    delay=delays[step],
                    error=detail,
                    waiting=waiting,
                    exc_info=not quiet,
                )
        except Exception:
            # Could not park the message anywhere: hand it back to the broker unacked.
            log.exception("requeue_after_failure")
            with contextlib.suppress(Exception):
                await msg.nack(requeue=True)
            return
        failpoint("after_park")
        await msg.ack()

    async def _dead_letter(
        self, msg: RabbitMessage, delivery: Delivery, reason: str, detail: str, attempts: int = 1
    ) -> None:
        await self.publisher.publish(
            self.names.dead_letter,
            self.service,
            msg.body,
            message_id=msg.message_id or "",
            correlation_id=msg.correlation_id,
            event_type=msg.raw_message.type,
            headers=delivery.headers(
                dict(msg.headers or {}),
                **{
                    f"{HEADER}reason": reason,
                    f"{HEADER}detail": redact(detail)[:1000],
                    f"{HEADER}service": self.service,
                    f"{HEADER}attempts": attempts,
                    f"{HEADER}failed-at": datetime.now(UTC).isoformat(),
                },
            ),
            mandatory=True,
        )


class _Unreadable(BadMessage):
    def __init__(self, reason: str, detail: str, raw: Any, reasons: list[Reason]):
        super().__init__(reason, detail, reasons)
        self.raw = raw


def _invalid(
    reason: str, code: RejectionCode, exc: ValidationError, raw: Any, prefix: str = ""
) -> _Unreadable:
    reasons = reasons_from(exc, prefix)
    if code is RejectionCode.ENVELOPE_INVALID:
        reasons = [r.model_copy(update={"code": code}) for r in reasons]
    detail = "; ".join(f"{r.field}: {r.message}" for r in reasons)[:900]
    return _Unreadable(reason, detail, raw, reasons)
