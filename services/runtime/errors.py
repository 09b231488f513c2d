"""What can go wrong while handling a message, and how each case is treated."""

from __future__ import annotations

import asyncpg
from aiormq.exceptions import AMQPConnectionError


class Deferred(Exception):
    """The event depends on another that has not arrived yet: try again later.
    Counts against the retry budget, so a dependency that never comes ends in the
    dead-letter queue rather than looping."""


class BadMessage(Exception):
    """The message can never be handled as it stands (not JSON, not an envelope, unknown
    type, invalid data). Never retried: answered and dead-lettered at once."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
