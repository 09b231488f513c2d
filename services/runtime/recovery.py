"""Recoverability: what happens to a message whose handling failed
(``docs/architecture/retry-and-dead-letters.md``).

``decide`` is the whole policy, a pure function: infrastructure trouble (a lost database
or broker connection) waits, backing off, without spending the message's budget; an event
waiting for another (``Deferred``) waits up to its own limit; any other failure is retried
after each of the configured delays, then dead-lettered. ``Parking`` carries the decision
out: a copy goes to the service's delay queue (which dead-letters it back after its TTL)
or to its dead-letter queue, with the reason in ``x-linkwell-*`` headers; the original is
acknowledged only after the broker confirms the copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from contracts import BATCH_CONTENT_TYPE, CONTENT_TYPE

from .delivery import (
    ATTEMPTS_HEADER,
    DETAIL_HEADER,
    FAILED_AT_HEADER,
    LAST_ERROR_HEADER,
    REASON_HEADER,
    SERVICE_HEADER,
    Delivery,
)
from .errors import Deferred, is_transient
from .names import Names
from .publisher import Publisher
from .redaction import redact


@dataclass(frozen=True)
class Retry:
    delay: float
    delivery: Delivery  # the counts the copy carries
    waiting: bool  # True: not the message's fault (budget untouched)


@dataclass(frozen=True)
class GiveUp:
    reason: str  # dependency_missing or handler_failed


def decide(
    error: BaseException, delivery: Delivery, delays: tuple[float, ...], deferred_limit: int
) -> Retry | GiveUp:
    if is_transient(error):
        step = min(delivery.waits, len(delays) - 1)
        return Retry(delays[step], delivery.retried(waits=1), waiting=True)
    if isinstance(error, Deferred):
        if delivery.waits < deferred_limit:
            step = min(delivery.waits, len(delays) - 1)
            return Retry(delays[step], delivery.retried(waits=1), waiting=True)
        return GiveUp("dependency_missing")
    if delivery.attempt < len(delays):
        return Retry(delays[delivery.attempt], delivery.retried(attempt=1), waiting=False)
    return GiveUp("handler_failed")


def describe(error: BaseException) -> str:
    """An error for logs and headers: its type and redacted text, cut short."""
    return f"{type(error).__name__}: {redact(str(error))[:500]}"


class Parking:
    """Puts copies of a message on the service's delay or dead-letter queue, confirmed."""

    def __init__(self, publisher: Publisher, names: Names, service: str):
        self.publisher = publisher
        self.names = names
        self.service = service

    async def retry(self, raw: AbstractIncomingMessage, retry: Retry, detail: str) -> None:
        await self._publish(
            raw,
            self.names.retry_exchange(self.service),
            self.names.retry_queue(self.service, retry.delay),
            retry.delivery.parked_headers(dict(raw.headers or {}), **{LAST_ERROR_HEADER: detail}),
        )

    async def dead_letter(
        self,
        raw: AbstractIncomingMessage,
        delivery: Delivery,
        reason: str,
        detail: str,
        attempts: int = 1,
    ) -> None:
        await self._publish(
            raw,
            self.names.dead_letter,
            self.service,
            delivery.parked_headers(
                dict(raw.headers or {}),
                **dead_letter_headers(self.service, reason, detail, attempts),
            ),
        )

    async def _publish(
        self, raw: AbstractIncomingMessage, exchange: str, key: str, headers: dict[str, Any]
    ) -> None:
        await self.publisher.publish(
            exchange,
            key,
            raw.body,
            message_id=raw.message_id or "",
            correlation_id=raw.correlation_id,
            event_type=raw.type,
            headers=headers,
            mandatory=True,
            # a batch stays a batch (retried or dead-lettered whole); anything else is
            # parked as the one event it claims to be
            content_type=BATCH_CONTENT_TYPE
            if raw.content_type == BATCH_CONTENT_TYPE
            else CONTENT_TYPE,
        )


def dead_letter_headers(service: str, reason: str, detail: str, attempts: int) -> dict[str, Any]:
    return {
        REASON_HEADER: reason,
        DETAIL_HEADER: redact(detail)[:1000],
        SERVICE_HEADER: service,
        ATTEMPTS_HEADER: attempts,
        FAILED_AT_HEADER: datetime.now(UTC).isoformat(),
    }
