"""A person withdraws their referral from its status page: in one transaction, the
submission marked (once) and a ``referral.withdrawn.v1`` in the outbox for
``<ns>.inbound``, sent as the organisation that sent the referral. Triage frees the place
or the waitlist entry; the answer comes back as a status (``withdrawn``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from contracts.enums import ReferralStatusValue, WithdrawnBy
from contracts.envelope import org_source
from contracts.events import ReferralWithdrawn
from services.runtime.logs import get_logger
from services.runtime.names import Names
from services.runtime.outbox import enqueue

from .store import GatewayStore, Standing

log = get_logger(__name__)

# where a withdrawal no longer makes sense
FINISHED = {
    ReferralStatusValue.REJECTED.value,
    ReferralStatusValue.CLOSED.value,
    ReferralStatusValue.WITHDRAWN.value,
}


def can_withdraw(standing: Standing) -> bool:
    """Once intake has accepted it (a referral id to name), until it is finished."""
    return (
        standing.referral_id is not None
        and standing.withdrawn_at is None
        and standing.step not in FINISHED
    )


def event_id_for(reference: str) -> str:
    """One withdrawal per referral, however often it is asked for."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"linkwell:gateway:withdraw:{reference}"))


async def send_withdrawal(
    conn: asyncpg.Connection, standing: Standing | None, reference: str, names: Names, reason: str
) -> tuple[bool, str | None]:
    """In the caller's transaction, with ``standing`` locked: (True, the event's id) if a
    withdrawal is now in the outbox, (True, None) if one already was, (False, None) if the
    referral cannot be withdrawn. Sent as the organisation that sent the referral."""
    if standing is None:
        return False, None
    if standing.withdrawn_at is not None:
        return True, None
    if not can_withdraw(standing):
        return False, None
    assert standing.referral_id is not None
    data = ReferralWithdrawn(
        referral_id=standing.referral_id,
        by=WithdrawnBy.REFERRER,
        reason=reason,
        withdrawn_at=datetime.now(UTC),
    )
    event = data.envelope(
        source=org_source(standing.organisation), event_id=event_id_for(reference)
    )
    await enqueue(conn, event, names.inbound, data.routing_key())
    await GatewayStore(conn).submissions.withdrawn(reference, event.id)
    return True, event.id


async def withdraw(pool: asyncpg.Pool, names: Names, reference: str, check: bytes) -> bool:
    """True if the referral is (now, or already) being withdrawn; False if it cannot be."""
    async with pool.acquire() as conn, conn.transaction():
        standing = await GatewayStore(conn).submissions.standing(reference, check, lock=True)
        done, event_id = await send_withdrawal(
            conn, standing, reference, names, "withdrawn by the person on the gateway's status page"
        )
    if event_id is not None:
        log.info("withdrawal_sent", event_id=event_id)
    return done
