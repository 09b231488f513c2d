"""The one path every message takes: decode, dispatch, commit, then acknowledge.

1. Decode the CloudEvents envelope and validate ``data`` against the type's model. A
   message that cannot be read is a ``BadMessage``: an outside sender gets a
   machine-readable rejection (through the outbox) and the message goes to the
   service's dead-letter queue with the reason. Never retried, never blocking.
2. In one transaction: claim the event id in the inbox (a duplicate stops here), run
   the handler, which changes state and writes events to the outbox; commit.
3. Only then acknowledge. If the handler fails, the message is re-published to a delay
   queue and comes back after a pause (0.5 s, 5 s, 30 s by default); when those are spent
   it is dead-lettered with the reason. Infrastructure errors retry without spending the
   budget. The original is acknowledged only after the copy is confirmed by the broker.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from faststream.rabbit.message import RabbitMessage
from pydantic import ValidationError

from contracts import CloudEvent, EventData, RawEvent, org_from_source
from contracts.enums import RejectionCode
from contracts.events import EventRejected, Reason
from contracts.rejections import reasons_from

from .errors import BadMessage, Deferred, is_transient
from .failpoints import failpoint
from .inbox import claim
from .logs import get_logger, redact
from .outbox import Publisher
from .settings import Settings
from .uow import UnitOfWork

log = get_logger(__name__)

ATTEMPT_HEADER = "x-linkwell-attempt"

Handler = Callable[[UnitOfWork, CloudEvent[Any], Any], Awaitable[None]]
RejectionBuilder = Callable[[dict[str, Any], str, list[Reason]], EventData]


@dataclass(frozen=True)
class Route:
    model: type[EventData]
    handler: Handler


def default_rejection(raw: dict[str, Any], sender: str, reasons: list[Reason]) -> EventData:
    return EventRejected(
        rejected_event_id=str(raw.get("id")),
        rejected_type=raw.get("type") if isinstance(raw.get("type"), str) else None,
        sender=sender,
        reasons=reasons,
        rejected_at=datetime.now(UTC),
    )


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadMessage("not_json", f"body is not JSON ({type(exc).__name__})") from None


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
    ):
        self.service = service
        self.settings = settings
        self.names = settings.names
        self.pool = pool
        self.publisher = publisher
        self.routes = routes
        self.rejections = rejections

    # -------------------------------------------------------------- entry point

    async def __call__(self, msg: RabbitMessage) -> None:
        headers = dict(msg.headers or {})
        attempt = int(headers.get(ATTEMPT_HEADER, 0) or 0)
        with structlog.contextvars.bound_contextvars(
            message_id=msg.message_id, routing_key=msg.raw_message.routing_key
        ):
            try:
                await self._handle(msg, attempt)
            except BadMessage as exc:
                await self._reject_bad(msg, exc)
                return
            except Exception as exc:
                await self._retry_or_dead_letter(msg, headers, attempt, exc)
                return
            await msg.ack()

    # -------------------------------------------------------------- happy path

    def decode(self, body: bytes) -> tuple[CloudEvent[Any], Route, Any]:
        raw = _load_json(body)
        try:
            envelope = RawEvent.model_validate(raw)
        except ValidationError as exc:
            raise _invalid("envelope_invalid", RejectionCode.ENVELOPE_INVALID, exc, raw) from None
        route = self.routes.get(envelope.type)
        if route is None:
            raise _Unreadable(
                "unsupported_type",
                f"{self.service} does not handle {envelope.type}",
                raw,
                [
                    Reason(
                        code=RejectionCode.UNSUPPORTED_TYPE,
                        message="unsupported type",
                        field="type",
                    )
                ],
            )
        try:
            data = route.model.model_validate(envelope.data)
        except ValidationError as exc:
            raise _invalid(
                "schema_invalid", RejectionCode.SCHEMA_INVALID, exc, raw, "data."
            ) from None
        return envelope, route, data

    async def _handle(self, msg: RabbitMessage, attempt: int) -> None:
        envelope, route, data = self.decode(msg.body)
        with structlog.contextvars.bound_contextvars(
            event_id=envelope.id,
            event_type=envelope.type,
            referral_id=envelope.subject,
            correlation_id=envelope.correlationid or envelope.id,
            attempt=attempt,
        ):
            async with self.transaction(envelope.correlationid or envelope.id) as uow:
                if not await claim(uow.conn, envelope.id, envelope.type):
                    log.info("duplicate_dropped")
                    return
                failpoint("after_claim")
                await route.handler(uow, envelope, data)
                failpoint("before_commit")
            failpoint("after_commit")
            log.info("handled", emitted=[e.type for e in uow.emitted])

    @contextlib.asynccontextmanager
    async def transaction(self, correlation_id: str | None) -> AsyncIterator[UnitOfWork]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield UnitOfWork(conn, self.settings, self.service, correlation_id)

    # -------------------------------------------------------------- bad input

    async def _reject_bad(self, msg: RabbitMessage, exc: BadMessage) -> None:
        raw = exc.raw if isinstance(exc, _Unreadable) else None
        reasons = exc.reasons if isinstance(exc, _Unreadable) else []
        try:
            answered = await self._answer(raw, reasons)
            await self._dead_letter(msg, exc.reason, exc.detail)
        except Exception as failure:  # the database or broker is down: try again later
            await self._retry_or_dead_letter(msg, dict(msg.headers or {}), 0, failure)
            return
        log.warning("bad_message", reason=exc.reason, detail=exc.detail, answered=answered)
        await msg.ack()

    async def _answer(self, raw: dict[str, Any] | None, reasons: list[Reason]) -> bool:
        """Send the sender a rejection, once per event id, if the sender can be named."""
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not reasons:
            return False
        sender = org_from_source(raw.get("source") if isinstance(raw.get("source"), str) else None)
        if sender is None:
            return False
        build = self.rejections.get(str(raw.get("type")), default_rejection)
        event_id = raw["id"]
        async with self.transaction(event_id) as uow:
            if await claim(uow.conn, event_id, str(raw.get("type"))[:200]):
                await uow.emit(build(raw, sender, reasons))
        return True

    # -------------------------------------------------------------- failures

    async def _retry_or_dead_letter(
        self, msg: RabbitMessage, headers: dict[str, Any], attempt: int, exc: Exception
    ) -> None:
        delays = self.settings.retry_delays
        transient = is_transient(exc)
        detail = f"{type(exc).__name__}: {redact(str(exc))[:500]}"
        try:
            if transient or attempt < len(delays):
                step = min(attempt, len(delays) - 1)
                await self.publisher.publish(
                    "",
                    self.names.retry_queue(self.service, delays[step]),
                    msg.body,
                    message_id=msg.message_id or "",
                    correlation_id=msg.correlation_id,
                    event_type=msg.raw_message.type,
                    headers={
                        **headers,
                        ATTEMPT_HEADER: attempt if transient else attempt + 1,
                        "x-linkwell-last-error": detail,
                    },
                )
                log_method = log.warning if transient or isinstance(exc, Deferred) else log.error
                log_method(
                    "retry_scheduled",
                    delay=delays[step],
                    attempt=attempt + 1,
                    transient=transient,
                    error=detail,
                    exc_info=not (transient or isinstance(exc, Deferred)),
                )
            else:
                reason = "dependency_missing" if isinstance(exc, Deferred) else "handler_failed"
                await self._dead_letter(msg, reason, detail, attempts=attempt + 1)
                log.error("dead_lettered", reason=reason, error=detail, attempts=attempt + 1)
        except Exception:
            # Could not park the message anywhere: hand it back to the broker unacked.
            log.exception("requeue_after_failure")
            with contextlib.suppress(Exception):
                await msg.nack(requeue=True)
            return
        failpoint("after_park")
        await msg.ack()

    async def _dead_letter(
        self, msg: RabbitMessage, reason: str, detail: str, attempts: int = 1
    ) -> None:
        raw = msg.raw_message
        await self.publisher.publish(
            self.names.dead_letter,
            self.service,
            msg.body,
            message_id=msg.message_id or "",
            correlation_id=msg.correlation_id,
            event_type=raw.type,
            headers={
                **dict(msg.headers or {}),
                "x-linkwell-reason": reason,
                "x-linkwell-detail": redact(detail)[:1000],
                "x-linkwell-service": self.service,
                "x-linkwell-attempts": attempts,
                "x-linkwell-failed-at": datetime.now(UTC).isoformat(),
                "x-linkwell-original-exchange": raw.exchange or "",
                "x-linkwell-original-routing-key": raw.routing_key or "",
            },
        )


class _Unreadable(BadMessage):
    def __init__(self, reason: str, detail: str, raw: Any, reasons: list[Reason]):
        super().__init__(reason, detail)
        self.raw = raw
        self.reasons = reasons


def _invalid(
    reason: str, code: RejectionCode, exc: ValidationError, raw: Any, prefix: str = ""
) -> _Unreadable:
    reasons = reasons_from(exc, prefix)
    if code is RejectionCode.ENVELOPE_INVALID:
        reasons = [r.model_copy(update={"code": code}) for r in reasons]
    detail = "; ".join(f"{r.field}: {r.message}" for r in reasons)[:900]
    return _Unreadable(reason, detail, raw, reasons)
