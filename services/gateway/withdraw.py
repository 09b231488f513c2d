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


async def withdraw(pool: asyncpg.Pool, names: Names, reference: str, check: bytes) -> bool:
    """True if the referral is (now, or already) being withdrawn; False if it cannot be."""
    async with pool.acquire() as conn, conn.transaction():
        store = GatewayStore(conn).submissions
        standing = await store.standing(reference, check, lock=True)
        if standing is None:
            return False
        if standing.withdrawn_at is not None:
            return True
        if not can_withdraw(standing):
            return False
        assert standing.referral_id is not None
        data = ReferralWithdrawn(
            referral_id=standing.referral_id,
            by=WithdrawnBy.REFERRER,
            reason="withdrawn by the person on the gateway's status page",
            withdrawn_at=datetime.now(UTC),
        )
        event = data.envelope(
            source=org_source(standing.organisation), event_id=event_id_for(reference)
        )
        await enqueue(conn, event, names.inbound, data.routing_key())
        await store.withdrawn(reference, event.id)
    log.info("withdrawal_sent", event_id=event.id)
    return True
