"""The dispatcher: sends queued notifications, a channel batch at a time, each batch in
one transaction (claim, send, mark). What a crash can repeat is exactly what was in
flight: the messages of the one channel batch whose send had begun and whose marking had
not committed, one email over SMTP (``SmtpChannel.batch``), up to 50 lines of the spool
(``FileChannel.batch``), each again with its key (``docs/architecture/notifications.md``).

Failures are judged two ways (``domain.ChannelState``). A channel that cannot be reached
is down: the message that met the outage is charged an attempt and held by it, the rest
wait untried, the channel is probed every 0.25 to 2 s, and when it answers, what the
outage held is due at once. A message the channel refused backs off on its own (1, 2,
4... seconds, at most an hour). After ``LINKWELL_NOTIFY_MAX_ATTEMPTS`` a message is given
up: marked failed, counted, and the team told by ``notification.failed.v1``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge

from contracts.events import NotificationFailed
from services.runtime import audit
from services.runtime.audit import AuditAction, AuditRecipientKind
from services.runtime.failpoints import failpoint
from services.runtime.handling import UnitOfWork, UnitOfWorkFactory, transaction
from services.runtime.logs import get_logger
from services.runtime.poller import Poller
from services.runtime.redaction import redact

from .channels import Channel, NotTried, Outgoing, Router
from .domain import ChannelState, Medium, backoff
from .handlers import DISPATCH
from .store import NotifyStore, Pending

log = get_logger(__name__)
BATCH = 50  # at most, notifications per transaction (a channel's own batch may be less)

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
CHANNEL_UP = Gauge(
    "linkwell_notify_channel_up",
    "1 while a delivery channel is reachable, 0 while it is down and being probed.",
    ["channel"],
)


class Dispatcher(Poller):
    name = "notify_dispatcher"

    def __init__(
        self, router: Router, unit_of_work: UnitOfWorkFactory, max_attempts: int, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.router = router
        self.unit_of_work = unit_of_work
        self.max_attempts = max_attempts
        self.lanes = router.lanes()
        self.states = {id(channel): ChannelState() for channel, _ in self.lanes}
        for channel, _ in self.lanes:
            CHANNEL_UP.labels(_label(channel)).set(0)  # until a probe answers

    async def work(self) -> bool:
        """A batch of each channel that can be used now. True if a batch was full (more
        may be due)."""
        more = False
        for channel, media in self.lanes:
            state = self.states[id(channel)]
            if not state.usable(time.monotonic()):
                continue
            if state.down and not await self._probe(channel, media, state):
                continue
            if state.release:
                await self._release(media, state)
            more |= await self._send_batch(channel, media, state)
        return more

    def idle_for(self) -> float:
        """Until the next probe of a channel that is down, if that comes before the poll."""
        now = time.monotonic()
        probes = [s.probe_at - now for s in self.states.values() if s.down]
        return min([self._interval, *probes])

    async def _probe(
        self, channel: Channel, media: tuple[Medium, ...], state: ChannelState
    ) -> bool:
        label = _label(channel)
        try:
            await channel.probe()
        except Exception as exc:
            state.unreachable(time.monotonic())
            CHANNEL_UP.labels(label).set(0)
            log.warning(
                "notify_channel_down",
                channel=label,
                outages=state.outages,
                error=type(exc).__name__,
            )
            return False
        state.reached()
        CHANNEL_UP.labels(label).set(1)
        log.info("notify_channel_up", channel=label, media=[m.value for m in media])
        return True

    async def _release(self, media: tuple[Medium, ...], state: ChannelState) -> None:
        async with transaction(self._pool, self.unit_of_work, None) as uow:
            released = await uow.store.outgoing.release(media)
        state.release = False
        if released:
            log.info("notifications_released", count=released, media=[m.value for m in media])

    async def _send_batch(
        self, channel: Channel, media: tuple[Medium, ...], state: ChannelState
    ) -> bool:
        """One batch of the channel in one transaction: claim what is due, send, mark."""
        size = min(channel.batch, self._batch)
        async with transaction(self._pool, self.unit_of_work, None) as uow:
            due = await uow.store.outgoing.next_due(size, media)
            if not due:
                return False
            messages = [Outgoing(p.key, p.medium, p.address, p.subject, p.body) for p in due]
            # the channel bounds its own time (a send's timeout, a batch's budget) and
            # says what each message came to, so nothing sent is ever counted as failed
            results = await channel.send_many(messages)
            failpoint("after_send")  # sent, not marked: what a crash here repeats
            sent = [p for p, result in zip(due, results, strict=True) if result is None]
            await uow.store.outgoing.sent([p.id for p in sent])
            for p in sent:
                SENT.labels(p.audience, p.medium.value).inc()
                # the message left: recorded in the transaction that marks it sent
                await audit.record(
                    uow,
                    AuditAction.NOTIFICATION,
                    AuditRecipientKind.TEAM if p.audience == "team" else AuditRecipientKind.PERSON,
                    p.pcn if p.audience == "team" else None,
                    referral_id=p.referral_id,
                    detail={"notification": p.id, "audience": p.audience, "medium": p.medium.value},
                )
            if sent:
                state.delivered()
            for p, result in zip(due, results, strict=True):
                if result is None or isinstance(result, NotTried):
                    continue
                if state.down:
                    continue  # after an outage (a spool write fails for all): not charged
                outage = channel.outage(result)
                if outage:
                    state.unreachable(time.monotonic())
                    CHANNEL_UP.labels(_label(channel)).set(0)
                await self.failed(uow, p, result, outage)
            return len(due) == size and not state.down

    async def failed(
        self, uow: UnitOfWork[NotifyStore], p: Pending, exc: Exception, outage: bool
    ) -> None:
        FAILED.labels(p.audience, p.medium.value).inc()
        error = redact(f"{type(exc).__name__}: {exc}")[:500]
        made = p.attempts + 1
        if made >= self.max_attempts:
            await self.give_up(uow, p, exc, error)
            return
        await uow.store.outgoing.failed(p.id, error, backoff(made), outage=outage)
        log.warning(
            "notification_failed",
            key=p.key,
            attempts=made,
            outage=outage,
            retry_in=None if outage else backoff(made),
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


def _label(channel: Channel) -> str:
    return getattr(channel, "name", type(channel).__name__)


def dispatcher(runner: Any) -> Dispatcher:
    settings = runner.own_settings
    return Dispatcher(
        Router.from_settings(settings, runner.settings.namespace),
        runner.unit_of_work,
        settings.notify_max_attempts,
        **{**runner.poller_kwargs(DISPATCH), "batch": BATCH},
    )
