"""Early events: an event about a referral this service does not know yet is held, with its
sender, and handled once the referral becomes known
(``docs/architecture/ordering-and-early-events.md``).

Events travel on separate queues, so a team's contact may reach outcomes before intake's
announcement of the referral does; a closure may reach triage before the referral itself.
Such an event cannot be judged yet: whether its sender may act on the referral (a team on
its own PCN's referrals only) depends on what is not known. So it is kept, never acted on,
until the referral arrives. Then each held event is handled in arrival order, each in a
savepoint of the arriving referral's transaction, by its route's handler, which applies
every rule as for an event that came in order. One that is refused then (another PCN's,
say) is undone, answered with ``event.rejected.v1`` to its sender and dead-lettered with
the reason, through the outbox, in the same transaction; it never reaches a decision.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from contracts import EVENTS, CloudEvent, org_source
from contracts.events import parse_event

from . import metrics
from .admission import default_rejection
from .answers import answer
from .delivery import ORIGIN_EXCHANGE, ORIGIN_KEY, USER_HEADER
from .errors import BadMessage
from .logs import get_logger
from .outbox import enqueue
from .recovery import dead_letter_headers

if TYPE_CHECKING:
    from .handling import UnitOfWork

log = get_logger(__name__)


async def serialise(uow: UnitOfWork[Any], referral_id: uuid.UUID) -> None:
    """Lock ``referral_id`` in this service, known here or not, until the transaction
    ends. Taken before deciding to hold an event and before making the referral known
    (and releasing), it keeps the two from missing each other: whichever comes second
    waits for the first to commit, then sees it."""
    await uow.conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", lock_key(uow, referral_id)
    )


# in ``uow.shared``: the referral ids ``serialise_many`` locked until the transaction ends
_SERIALISED = "early.serialised"


async def serialise_many(uow: UnitOfWork[Any], referral_ids: list[uuid.UUID]) -> None:
    """``serialise`` for several referral ids, in one statement, in the order of their
    keys (a batch's, at its start: its statements after this one see every hold committed
    before the locks were granted); ``serialised`` tells its handlers so."""
    await uow.conn.execute(
        "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0)))"
        " FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) AS keys",
        sorted({lock_key(uow, r) for r in referral_ids}),
    )
    uow.shared.setdefault(_SERIALISED, set()).update(referral_ids)


def serialised(uow: UnitOfWork[Any], referral_id: uuid.UUID) -> bool:
    """Whether this transaction holds ``referral_id``'s lock since ``serialise_many``
    (outside any savepoint, so held until it ends)."""
    return referral_id in uow.shared.get(_SERIALISED, ())


def lock_key(uow: UnitOfWork[Any], referral_id: uuid.UUID) -> str:
    """What ``serialise`` locks, for a statement that takes the same lock first (as
    ``pg_advisory_xact_lock(hashtextextended(key, 0))``) and then makes the referral known."""
    return f"{uow.names.schema(uow.service)}#{referral_id}"


async def hold(uow: UnitOfWork[Any], referral_id: uuid.UUID, event: CloudEvent[Any]) -> None:
    """Keep ``event`` until ``referral_id`` is known; it is not acted on before."""
    await uow.conn.execute(
        "INSERT INTO early_event (referral_id, source, event_id, event_type, sender, body)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, event_id) DO NOTHING",
        referral_id,
        event.source,
        event.id,
        event.type,
        event.sender_org,
        event.to_json(),
    )
    log.info("held_until_referral_known", referral_id=str(referral_id))


async def release(
    uow: UnitOfWork[Any], referral_id: uuid.UUID, taken: list[Any] | None = None
) -> int:
    """Handle every event held for ``referral_id``, oldest first; how many there were
    (handled or refused). Call once the referral is known, in the transaction that made
    it known. ``taken``: the held events, if the statement that made it known took them
    out of ``early_event`` already (after the referral id's lock was granted, as here)."""
    rows = taken
    if rows is None:
        rows = await uow.conn.fetch(
            "DELETE FROM early_event WHERE referral_id = $1"
            " RETURNING source, event_id, event_type, sender, body, received_at",
            referral_id,
        )
    for row in sorted(rows, key=lambda r: (r["received_at"], r["event_id"])):
        route = uow.routes[row["event_type"]]
        event = parse_event(route.model, row["body"])
        mark = uow.mark()
        try:
            async with uow.conn.transaction():  # a savepoint: a refusal undoes only this one
                await route.handler(uow, event, event.data)
        except BadMessage as exc:
            uow.rewind(mark)  # and what it emitted before it was refused
            await refuse(uow, row, exc)
    return len(rows)


async def refuse(uow: UnitOfWork[Any], row: Any, exc: BadMessage) -> None:
    """Answer the sender of a held event and dead-letter it, through the outbox."""
    sender = row["sender"]
    if sender is not None:
        raw = {"id": row["event_id"], "type": row["event_type"], "source": row["source"]}
        await uow.emit(answer(default_rejection, default_rejection, raw, sender, exc.reasons))
    letter_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{row['source']}#{row['event_id']}#dead"))
    spec = EVENTS[row["event_type"]]
    marker = CloudEvent[dict[str, Any]](
        specversion="1.0",
        id=letter_id,
        source=uow.names.source(uow.service),
        type=spec.type,
        time=row["received_at"],
        data={},
    )
    headers = {
        ORIGIN_EXCHANGE: uow.names.inbound,
        ORIGIN_KEY: spec.type,
        **({USER_HEADER: sender} if sender else {}),
        **dead_letter_headers(uow.service, exc.reason, exc.detail, 1),
    }
    await enqueue(
        uow.conn, marker, uow.names.dead_letter, uow.service, headers=headers, body=row["body"]
    )
    await uow.wake("outbox")
    metrics.DEAD_LETTERED.labels(uow.service, spec.type, exc.reason).inc()
    log.warning(
        "early_event_refused",
        reason=exc.reason,
        sender=sender,
        answered_to=org_source(sender) if sender else None,
    )
