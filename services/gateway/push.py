"""The push dispatcher: sends each queued step of a BaRS referral to its sender's
registered endpoint as a ``servicerequest-response`` message (``fhir/push.py`` builds
it), one delivery at a time per referral and endpoint, in order, each in its own
transaction (claim, POST, mark). A crash between a POST and its commit sends that one
message again, with the same ``X-Request-Id`` and MessageHeader id for the receiver to
drop the repeat.

A delivery the endpoint refuses (an HTTP status other than 2xx) or cannot be reached for
is retried after 1, 2, 4... seconds (at most an hour), the schedule notify keeps, and
given up after ``LINKWELL_GATEWAY_PUSH_MAX_ATTEMPTS`` tries or
``LINKWELL_GATEWAY_PUSH_GIVE_UP_HOURS`` after it was queued: marked, counted and logged
(ids only); the sender can still poll ``GET /Task``. Each message delivered is a
disclosure on the audit trail, recorded in the transaction that marks it sent."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import Counter

from services.runtime import audit
from services.runtime.audit import AuditAction, AuditRecipientKind
from services.runtime.handling import UnitOfWorkFactory, transaction
from services.runtime.logs import get_logger
from services.runtime.poller import Poller

from .fhir import push
from .handlers import PUSH
from .store import GatewayStore

log = get_logger(__name__)
BATCH = 20  # deliveries claimed per pass

PUSHED = Counter("linkwell_gateway_pushes_sent", "Steps pushed to a BaRS sender's endpoint.")
PUSH_FAILED = Counter(
    "linkwell_gateway_pushes_failed",
    "Failed pushes to a sender's endpoint (each retried later, until given up).",
)
PUSH_GIVEN_UP = Counter(
    "linkwell_gateway_pushes_given_up", "Pushed steps given up after every try."
)


class PushDispatcher(Poller):
    name = "gateway_push"

    def __init__(
        self,
        unit_of_work: UnitOfWorkFactory,
        *,
        max_attempts: int,
        max_age: timedelta,
        timeout: float,
        development: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.development = development  # a receiver on this machine, for tests and demos
        self.unit_of_work = unit_of_work
        self.max_attempts = max_attempts
        self.max_age = max_age
        self.timeout = timeout
        self.next_in: float | None = None
        self._client: httpx.AsyncClient | None = None

    async def _public(self, endpoint: str) -> bool:
        """Where the endpoint's name resolves now: public addresses only (a name
        registered as public may later point inside the network)."""
        parts = httpx.URL(endpoint)
        found = await asyncio.get_running_loop().getaddrinfo(
            parts.host, parts.port or 443, type=socket.SOCK_STREAM
        )
        return push.public_addresses([str(info[4][0]) for info in found])

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._client

    async def stop(self) -> None:
        await super().stop()
        if self._client is not None:
            await self._client.aclose()

    def idle_for(self) -> float:
        """Until the next delivery falls due, if that comes before the safety poll."""
        if self.next_in is None:
            return self._interval
        return max(min(self._interval, self.next_in), 0.05)

    async def work(self) -> bool:
        async with transaction(self._pool, self.unit_of_work, None) as uow:
            due = await uow.store.fhir.due_pushes(self._batch)
        sent_any = False
        for delivery in due:
            sent_any |= await self._deliver(delivery)
        async with self._pool.acquire() as conn:
            self.next_in = await GatewayStore(conn).fhir.next_push_in()
        # more may be due at once: a step whose turn came because the one before it went
        return len(due) == self._batch or (sent_any and self.next_in == 0.0)

    async def _deliver(self, d: push.Delivery) -> bool:
        """One delivery in one transaction: lock it again (another dispatcher may have
        taken it), POST, mark. True if it was delivered."""
        async with transaction(self._pool, self.unit_of_work, None) as uow:
            store = uow.store.fhir
            if not await store.lock_push(d.id, d.attempts):
                return False
            error = await self._post(d)
            if error is None:
                await store.push_sent(d.id)
                PUSHED.inc()
                await audit.record(
                    uow,
                    AuditAction.STATUS,
                    AuditRecipientKind.REFERRER,
                    d.organisation,
                    referral_id=d.referral_id,
                    detail={"delivery": d.id, "channel": "bars_push", "status": d.status},
                )
                log.info(
                    "fhir_push_sent",
                    delivery=d.id,
                    organisation=d.organisation,
                    attempts=d.attempts + 1,
                )
                return True
            PUSH_FAILED.inc()
            made = d.attempts + 1
            if push.give_up(
                made,
                d.created_at,
                datetime.now(UTC),
                max_attempts=self.max_attempts,
                max_age=self.max_age,
            ):
                await store.push_given_up(d.id, error)
                PUSH_GIVEN_UP.inc()
                log.error(
                    "fhir_push_given_up",
                    delivery=d.id,
                    organisation=d.organisation,
                    referral_id=str(d.referral_id) if d.referral_id else None,
                    attempts=made,
                    error=error,
                )
            else:
                await store.push_failed(d.id, error, push.backoff(made))
                log.warning(
                    "fhir_push_failed",
                    delivery=d.id,
                    organisation=d.organisation,
                    attempts=made,
                    retry_in=push.backoff(made),
                    error=error,
                )
            return False

    async def _post(self, d: push.Delivery) -> str | None:
        """None if the endpoint took the message (2xx), else why not (a status or an
        error's type: never the endpoint's answer, which may quote anything)."""
        body = json.dumps(push.response_message(d)).encode()
        try:
            if not self.development and not await self._public(d.endpoint):
                return "address_not_public"
            answer = await self.client().post(d.endpoint, content=body, headers=push.headers(d))
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError, ValueError, OSError) as exc:
            return type(exc).__name__
        if 200 <= answer.status_code < 300:
            return None
        return f"http_{answer.status_code}"


def dispatcher(runner: Any) -> PushDispatcher:
    own = runner.own_settings
    return PushDispatcher(
        runner.unit_of_work,
        max_attempts=own.gateway_push_max_attempts,
        max_age=timedelta(hours=own.gateway_push_give_up_hours),
        timeout=own.gateway_push_timeout_seconds,
        development=runner.settings.mode == "development",
        **{**runner.poller_kwargs(PUSH), "batch": BATCH},
    )
