"""The dispatcher: sends queued notifications in batches, one transaction a batch (claim,
send, mark). A crash re-sends at most the batch in hand (channels get each message's key
to deduplicate). A failed send backs that message off (1, 2, 4... seconds, at most an
hour), and a channel stops at its first failure, since it is likely down (or when its
batch has taken its time budget: the rest are not tried, not failed); after
``LINKWELL_NOTIFY_MAX_ATTEMPTS`` a message is given up: marked failed, counted, and the
team told by ``notification.failed.v1``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from contracts.events import NotificationFailed
from services.runtime.handling import UnitOfWork, UnitOfWorkFactory, transaction
from services.runtime.logs import get_logger
from services.runtime.poller import Poller
from services.runtime.redaction import redact

from .channels import NotTried, Outgoing, Router
from .handlers import DISPATCH
from .store import NotifyStore, Pending

log = get_logger(__name__)
BATCH = 50  # notifications per transaction
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
        """One batch in one transaction: claim what is due, send it, mark it. True if the
        batch was full (more may be due)."""
        async with transaction(self._pool, self.unit_of_work, None) as uow:
            due = await uow.store.outgoing.next_due(self._batch)
            if not due:
                return False
            messages = [Outgoing(p.key, p.medium, p.address, p.subject, p.body) for p in due]
            # channels bound their own time (a send's timeout, a batch's budget) and say
            # what each message came to, so nothing sent is ever counted as failed
            results = await self.router.send_many(messages)
            sent = [p for p, result in zip(due, results, strict=True) if result is None]
            await uow.store.outgoing.sent([p.id for p in sent])
            for p in sent:
                SENT.labels(p.audience, p.medium.value).inc()
            for p, result in zip(due, results, strict=True):
                if result is not None and not isinstance(result, NotTried):
                    await self.failed(uow, p, result)
            return len(due) == self._batch and len(sent) == len(due)

    async def failed(self, uow: UnitOfWork[NotifyStore], p: Pending, exc: Exception) -> None:
        FAILED.labels(p.audience, p.medium.value).inc()
        error = redact(f"{type(exc).__name__}: {exc}")[:500]
        made = p.attempts + 1
        if made >= self.max_attempts:
            await self.give_up(uow, p, exc, error)
            return
        await uow.store.outgoing.failed(p.id, error, backoff(made))
        log.warning(
            "notification_failed",
            key=p.key,
            attempts=made,
            retry_in=backoff(made),
            error=type(exc).__name__,
        )

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
        **{**runner.poller_kwargs(DISPATCH), "batch": BATCH},
    )
