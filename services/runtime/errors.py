"""What can go wrong while handling a message, and how each case is treated
(``recovery.decide``)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiormq.exceptions import AMQPConnectionError


class Deferred(Exception):
    """The event depends on another that has not arrived yet: try again later, up to
    ``LINKWELL_DEFERRED_LIMIT`` times; a dependency that never comes ends in the
    dead-letter queue rather than looping."""


class BadMessage(Exception):
    """The message can never be handled as it stands (not JSON, not an envelope, unknown
    type, invalid data, not the sender's to send). Never retried: the sender is answered
    and the message dead-lettered at once."""

    def __init__(
        self,
        reason: str,
        detail: str,
        reasons: list[Any] | None = None,
        raw: dict[str, Any] | None = None,
    ):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.reasons = reasons or []  # contracts.events.Reason: the sender is told these
        self.raw = raw  # the parsed body, where it could be parsed


TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    AMQPConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # includes "cannot switch to state ...; another operation is
    # in progress" and "connection was closed in the middle of operation"
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ConnectionFailureError,
    asyncpg.QueryCanceledError,  # a statement cancelled while its server restarts
    OSError,
)


def is_transient(exc: BaseException) -> bool:
    """Infrastructure trouble, not the message's fault: retry without spending its budget,
    so an outage never pushes good referrals into the dead-letter queue. Whatever a lost
    connection raises counts, including errors raised while its cause is being handled."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, TRANSIENT):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False
