"""The dispatcher: sends queued notifications, one per transaction (claim, send, mark).
A crash re-sends at most the one message in hand (channels get its key to deduplicate).
A failed send backs that message off and ends the pass, since the channel is likely
down; nothing is lost."""

from __future__ import annotations

import asyncio
from typing import Any

from services.runtime.logs import get_logger
from services.runtime.poller import Poller
from services.runtime.redaction import redact

from .channels import Outgoing, Router
from .handlers import DISPATCH
from .store import NotifyStore

log = get_logger(__name__)
SEND_TIMEOUT = 60.0


class Dispatcher(Poller):
    name = "notify_dispatcher"

    def __init__(self, router: Router, **kwargs: Any):
        super().__init__(**kwargs)
        self.router = router

    async def work(self) -> bool:
        for _ in range(self._batch):
            outcome = await self.send_one()
            if outcome != "sent":
                return False
        return True

    async def send_one(self) -> str:
        """Send the next due notification: "sent", "none" (nothing due) or "failed"."""
        async with self._pool.acquire() as conn, conn.transaction():
            outgoing = NotifyStore(conn).outgoing
            pending = await outgoing.next_due()
            if pending is None:
                return "none"
            message = Outgoing(
                pending.key, pending.medium, pending.address, pending.subject, pending.body
            )
            try:
                await asyncio.wait_for(self.router.send(message), SEND_TIMEOUT)
            except Exception as exc:
                delay = min(2**pending.attempts, 3600)
                await outgoing.failed(
                    pending.id, redact(f"{type(exc).__name__}: {exc}")[:500], delay
                )
                log.warning("notification_failed", key=pending.key, retry_in=delay)
                return "failed"
            await outgoing.sent(pending.id)
            return "sent"


def dispatcher(runner: Any) -> Dispatcher:
    router = Router.from_settings(runner.own_settings, runner.settings.namespace)
    return Dispatcher(router, **runner.poller_kwargs(DISPATCH))
