"""The dispatcher: sends queued notifications, one per transaction (claim, send, mark).
A crash re-sends at most the one message in hand (channels get its key to deduplicate).
A failed send backs that message off (1, 2, 4... seconds, at most an hour) and ends the
pass, since the channel is likely down; after ``LINKWELL_NOTIFY_MAX_ATTEMPTS`` it is given
up: marked failed, counted, and the team told by ``notification.failed.v1``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client import Counter

from contracts.events import NotificationFailed
from services.runtime.handling import UnitOfWork
from services.runtime.logs import get_logger
from services.runtime.poller import Poller
from services.runtime.redaction import redact

from .channels import Outgoing, Router
from .handlers import DISPATCH
from .store import NotifyStore, Pending

log = get_logger(__name__)
SEND_TIMEOUT = 60.0
MAX_BACKOFF = 3600.0

SENT = Counter("linkwell_notifications_sent", "Notifications delivered.", ["audience", "medium"])
FAILED = Counter(
    "linkwell_notifications_failed",
    "Failed sends (each retried later, until given up).",
    ["audience", "medium"],
)
GIVEN_UP = Counter(
    "linkwell_notifications_given_up",
    "Notifications given up after every attempt; the team is told.",
    ["audience", "medium"],
)

UnitOfWorkFactory = Callable[[asyncpg.Connection, str | None], UnitOfWork[NotifyStore]]


def backoff(attempts_made: int) -> float:
    return min(2.0 ** (attempts_made - 1), MAX_BACKOFF)


class Dispatcher(Poller):
    name = "notify_dispatcher"

    def __init__(
        self, router: Router, unit_of_work: UnitOfWorkFactory, max_attempts: int, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.router = router
        self.unit_of_work = unit_of_work
        self.max_attempts = max_attempts

    async def work(self) -> bool:
        for _ in range(self._batch):
            outcome = await self.send_one()
            if outcome != "sent":
                return False
        return True

    async def send_one(self) -> str:
        """Send the next due notification: "sent", "none" (nothing due), "failed" (to be
        retried) or "given_up"."""
        async with self._pool.acquire() as conn, conn.transaction():
            uow = self.unit_of_work(conn, None)
            pending = await uow.store.outgoing.next_due()
            if pending is None:
                return "none"
            message = Outgoing(
                pending.key, pending.medium, pending.address, pending.subject, pending.body
            )
            labels = (pending.audience, pending.medium.value)
            try:
                await asyncio.wait_for(self.router.send(message), SEND_TIMEOUT)
            except Exception as exc:
                FAILED.labels(*labels).inc()
                error = redact(f"{type(exc).__name__}: {exc}")[:500]
                made = pending.attempts + 1
                if made >= self.max_attempts:
                    await self.give_up(uow, pending, exc, error)
                    return "given_up"
                await uow.store.outgoing.failed(pending.id, error, backoff(made))
                log.warning(
                    "notification_failed",
                    key=pending.key,
                    attempts=made,
                    retry_in=backoff(made),
                    error=type(exc).__name__,
                )
                return "failed"
            await uow.store.outgoing.sent(pending.id)
            SENT.labels(*labels).inc()
            return "sent"

    async def give_up(
        self, uow: UnitOfWork[NotifyStore], pending: Pending, exc: Exception, error: str
    ) -> None:
        await uow.store.outgoing.given_up(pending.id, error)
        await uow.emit(
            NotificationFailed(
                referral_id=pending.referral_id,
                pcn=pending.pcn,
                audience=pending.audience,
                medium=pending.medium.value,
                attempts=pending.attempts + 1,
                error=type(exc).__name__[:100],
                failed_at=datetime.now(UTC),
            )
        )
        await uow.flush()
        GIVEN_UP.labels(pending.audience, pending.medium.value).inc()
        log.error(
            "notification_given_up",
            key=pending.key,
            referral_id=str(pending.referral_id),
            attempts=pending.attempts + 1,
            error=type(exc).__name__,
        )


def dispatcher(runner: Any) -> Dispatcher:
    settings = runner.own_settings
    return Dispatcher(
        Router.from_settings(settings, runner.settings.namespace),
        runner.unit_of_work,
        settings.notify_max_attempts,
        **runner.poller_kwargs(DISPATCH),
    )
