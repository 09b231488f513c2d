"""notify's handlers and the dispatcher that delivers what they decide."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from contracts import CloudEvent
from contracts.enums import ReferralStatusValue
from contracts.events import (
    PersonContact,
    ReferralAccepted,
    ReferralAssigned,
    ReferralRejected,
    ReferralStatus,
    ReferralWaitlisted,
)
from services.runtime.errors import Deferred
from services.runtime.logs import get_logger, redact
from services.runtime.outbox import Poller
from services.runtime.service import Runner, ServiceDef, routes
from services.runtime.uow import UnitOfWork

from .channels import Outgoing, Router
from .domain import Known, Medium, Message, for_person, for_team, status_text

log = get_logger(__name__)
DISPATCH = "dispatch"
SEND_TIMEOUT = 60.0


async def known(uow: UnitOfWork, referral_id: uuid.UUID) -> Known:
    row = await uow.conn.fetchrow(
        "SELECT * FROM referral WHERE referral_id = $1 FOR UPDATE", referral_id
    )
    if row is None:
        # referral.accepted.v1 was delayed (retrying): come back to this one later.
        raise Deferred(f"referral {referral_id} not yet known to notify")
    return Known(
        str(row["referral_id"]),
        row["sender"],
        row["sender_reference"],
        row["pcn"],
        PersonContact.model_validate(row["contact"]),
    )


async def status(
    uow: UnitOfWork,
    referral_id: uuid.UUID | None,
    sender: str,
    reference: str | None,
    value: ReferralStatusValue,
    text: str,
) -> None:
    await uow.emit(
        ReferralStatus(
            referral_id=referral_id,
            sender=sender,
            sender_reference=reference,
            status=value,
            message=text,
            at=datetime.now(UTC),
        )
    )


async def queue(
    uow: UnitOfWork, event: CloudEvent[Any], referral_id: uuid.UUID, message: Message | None
) -> None:
    if message is None:
        log.warning("person_unreachable")  # no address on file: the team will follow up
        return
    inserted = await uow.conn.fetchval(
        "INSERT INTO notification (key, referral_id, audience, medium, address, subject, body)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING RETURNING 1",
        f"{referral_id}.{event.type}.{message.audience.value}",
        referral_id,
        message.audience.value,
        message.medium.value,
        message.address,
        message.subject,
        message.body,
    )
    if inserted:
        await uow.wake(DISPATCH)


async def on_accepted(uow: UnitOfWork, event: CloudEvent[Any], r: ReferralAccepted) -> None:
    await uow.conn.execute(
        "INSERT INTO referral (referral_id, sender, sender_reference, pcn, contact)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        r.referral_id,
        r.sender,
        r.sender_reference,
        r.pcn,
        r.contact.model_dump(mode="json"),
    )
    await status(
        uow,
        r.referral_id,
        r.sender,
        r.sender_reference,
        ReferralStatusValue.ACCEPTED,
        status_text(ReferralStatusValue.ACCEPTED, r.pcn),
    )


async def on_rejected(uow: UnitOfWork, event: CloudEvent[Any], r: ReferralRejected) -> None:
    await status(
        uow,
        None,
        r.sender,
        r.sender_reference,
        ReferralStatusValue.REJECTED,
        status_text(ReferralStatusValue.REJECTED, reasons=r.reasons),
    )


async def advance(uow: UnitOfWork, referral_id: uuid.UUID, stage: str) -> bool:
    """Move the referral to a later stage; False if it is already there or past it, so
    that a waitlisting that arrives after the assignment tells nobody anything."""
    moved = await uow.conn.fetchval(
        "UPDATE referral SET stage = $2 WHERE referral_id = $1 AND"
        " array_position(ARRAY['accepted', 'waitlisted', 'assigned'], stage)"
        " < array_position(ARRAY['accepted', 'waitlisted', 'assigned'], $2::text) RETURNING 1",
        referral_id,
        stage,
    )
    return moved is not None


async def placed(
    uow: UnitOfWork,
    event: CloudEvent[Any],
    r: ReferralWaitlisted | ReferralAssigned,
    stage: ReferralStatusValue,
) -> Known | None:
    """Tell the referrer and the person where the referral now stands, unless they have
    already heard of a later stage. Returns what notify knows, or None if stale."""
    k = await known(uow, r.referral_id)
    if not await advance(uow, r.referral_id, stage.value):
        log.info("stale_placement_ignored", stage=stage.value)
        return None
    await status(uow, r.referral_id, k.sender, k.sender_reference, stage, status_text(stage, r.pcn))
    await queue(uow, event, r.referral_id, for_person(k, r))
    return k


async def on_waitlisted(uow: UnitOfWork, event: CloudEvent[Any], r: ReferralWaitlisted) -> None:
    await placed(uow, event, r, ReferralStatusValue.WAITLISTED)


async def on_assigned(uow: UnitOfWork, event: CloudEvent[Any], r: ReferralAssigned) -> None:
    k = await placed(uow, event, r, ReferralStatusValue.ASSIGNED)
    if k is not None:
        team = uow.settings.team_address_template.format(pcn=r.pcn)
        await queue(uow, event, r.referral_id, for_team(k, r, team))


class Dispatcher(Poller):
    """Sends queued notifications, one per transaction: claim, send, mark. A crash
    re-sends at most the one message in hand (channels get its key to deduplicate). A
    failed send backs off that message and ends the pass, since the channel is likely
    down; nothing is lost."""

    name = "notify_dispatcher"

    def __init__(self, router: Router, **kwargs: Any):
        super().__init__(**kwargs)
        self.router = router

    async def run_once(self) -> int:
        sent = 0
        while sent < self._batch:
            async with self._pool.acquire() as conn, conn.transaction():
                outcome = await self.process_batch(conn, 1)
            if outcome <= 0:
                return sent
            sent += outcome
        return sent

    async def process_batch(self, conn: asyncpg.Connection, limit: int) -> int:
        """Send one pending notification: 1 if sent, 0 if none is due, -1 if it failed."""
        row = await conn.fetchrow(
            "SELECT id, key, medium, address, subject, body, attempts FROM notification"
            " WHERE sent_at IS NULL AND next_attempt_at <= now() ORDER BY id"
            " LIMIT 1 FOR UPDATE SKIP LOCKED"
        )
        if row is None:
            return 0
        message = Outgoing(
            row["key"], Medium(row["medium"]), row["address"], row["subject"], row["body"]
        )
        try:
            await asyncio.wait_for(self.router.send(message), SEND_TIMEOUT)
        except Exception as exc:
            delay = min(2 ** row["attempts"], 3600)
            await conn.execute(
                "UPDATE notification SET attempts = attempts + 1, last_error = $2,"
                " next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
                row["id"],
                redact(f"{type(exc).__name__}: {exc}")[:500],
                delay,
            )
            log.warning("notification_failed", key=row["key"], retry_in=delay)
            return -1
        await conn.execute(
            "UPDATE notification SET sent_at = now(), attempts = attempts + 1 WHERE id = $1",
            row["id"],
        )
        return 1


def dispatcher(runner: Runner) -> Dispatcher:
    return Dispatcher(Router.from_settings(runner.settings), **runner.poller_kwargs(DISPATCH))


SERVICE = ServiceDef(
    name="notify",
    directory=Path(__file__).parent,
    description="Tells referrers (referral.status.v1), link worker teams and people.",
    routes=routes(
        (ReferralAccepted, on_accepted),
        (ReferralRejected, on_rejected),
        (ReferralWaitlisted, on_waitlisted),
        (ReferralAssigned, on_assigned),
    ),
    pollers=(dispatcher,),
)
