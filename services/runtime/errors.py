"""What can go wrong while handling a message, and how each case is treated."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiormq.exceptions import AMQPConnectionError


class Deferred(Exception):
    """The event depends on another that has not arrived yet: try again later.
    Counts against the retry budget, so a dependency that never comes ends in the
    dead-letter queue rather than looping."""


class BadMessage(Exception):
    """The message can never be handled as it stands (not JSON, not an envelope, unknown
    type, invalid data). Never retried: answered and dead-lettered at once."""

    def __init__(self, reason: str, detail: str, reasons: list[Any] | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.reasons = reasons or []  # contracts.events.Reason: the sender is told these


def require_pcn(sender: str | None, pcn: str | None, what: str) -> None:
    """A link worker team acts only on its own PCN: its workers, its referrals."""
    if pcn is not None and sender != pcn:
        from contracts.enums import RejectionCode
        from contracts.events import Reason

        message = f"{what} belongs to PCN {pcn}; only its own team ({pcn}) may send this"
        raise BadMessage(
            "not_permitted",
            message,
            [Reason(code=RejectionCode.NOT_PERMITTED, message=message, field="source")],
        )


TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    AMQPConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


def is_transient(exc: BaseException) -> bool:
    """Infrastructure trouble, not the message's fault: retry without spending its budget,
    so an outage never pushes good referrals into the dead-letter queue."""
    return isinstance(exc, TRANSIENT)
