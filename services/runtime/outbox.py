"""Transactional outbox: events are written in the transaction of the state change that
caused them and published afterwards by a relay, so an event exists on the wire if and
only if its cause committed (``docs/architecture/outbox.md``).

The relay claims unpublished rows with ``FOR UPDATE SKIP LOCKED`` (replicas share the
work), publishes them persistent with publisher confirms, then marks them. A crash
between publish and mark re-publishes the same event id, which consumers drop. A row the
broker refuses waits, backing off, without holding up the rows behind it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from contracts import BATCH_CONTENT_TYPE, CloudEvent

from .failpoints import failpoint
from .logs import get_logger
from .poller import Poller
from .publisher import Publisher

log = get_logger(__name__)

# Types the relay may send several of in one message (``BATCH_CONTENT_TYPE``): those no
# organisation receives, consumed by Linkwell's services alone, each of which takes a batch
# as its events one by one (tests/unit/test_batches.py keeps this so). Each disclosure is
# recorded by its own audit event, each acceptance tells triage, notify and outcomes apart,
# and each step after assignment goes from outcomes to notify (and intake): sent alone,
# these were about three quarters of every message a referral cost the broker.
BATCHED = frozenset(
    {
        "audit.recorded.v1",
        "referral.placement.v1",
        "referral.contact.v1",
        "referral.recorded.v1",
        "referral.updated.v1",
    }
)
MAX_BATCHED = 100  # events in one message (an audit record is about 700 bytes, a contact 1 kB)


def messages_of(rows: list[asyncpg.Record]) -> list[list[asyncpg.Record]]:
    """The claimed rows as messages: a ``BATCHED`` type's rows for the same exchange and
    routing key together (at most ``MAX_BATCHED`` a message), every other row alone."""
    units: list[list[asyncpg.Record]] = []
    open_units: dict[tuple[str, str, str], list[asyncpg.Record]] = {}
    for row in rows:
        if row["event_type"] not in BATCHED or row["headers"] is not None:
            units.append([row])
            continue
        key = (row["event_type"], row["exchange"], row["routing_key"])
        unit = open_units.get(key)
        if unit is None or len(unit) >= MAX_BATCHED:
            unit = open_units[key] = []
            units.append(unit)
        unit.append(row)
    return units


async def enqueue(
    conn: asyncpg.Connection,
    event: CloudEvent[Any],
    exchange: str,
    routing_key: str,
    headers: dict[str, Any] | None = None,
    body: bytes | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO outbox (event_id, event_type, exchange, routing_key, correlation_id,"
        " body, headers) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        event.id,
        event.type,
        exchange,
        routing_key,
        event.correlationid,
        body if body is not None else event.to_json(),
        headers,
    )


_INSERT_MANY = (
    "INSERT INTO outbox (event_id, event_type, exchange, routing_key, correlation_id, body)"
    " SELECT e, t, $1, k, c, b FROM unnest($2::text[], $3::text[], $4::text[],"
    " $5::text[], $6::bytea[]) WITH ORDINALITY AS u(e, t, k, c, b, n) ORDER BY n"
)
# the same, and the relay woken on commit, still one round trip
_INSERT_MANY_AND_WAKE = f"WITH written AS ({_INSERT_MANY} RETURNING 1) SELECT pg_notify($7, '')"


async def enqueue_many(
    conn: asyncpg.Connection,
    exchange: str,
    events: list[tuple[CloudEvent[Any], str]],
    wake: str | None = None,
) -> None:
    """Several events in one statement (one round trip), in order; with ``wake``, that
    statement also NOTIFYs this channel (delivered when the transaction commits)."""
    await conn.execute(
        _INSERT_MANY if wake is None else _INSERT_MANY_AND_WAKE,
        exchange,
        [event.id for event, _ in events],
        [event.type for event, _ in events],
        [key for _, key in events],
        [event.correlationid for event, _ in events],
        [event.to_json() for event, _ in events],
        *(() if wake is None else (wake,)),
    )


class OutboxRelay(Poller):
    name = "outbox_relay"

    def __init__(self, publisher: Publisher, **kwargs: Any):
        super().__init__(**kwargs)
        self._publisher = publisher

    async def work(self) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, event_id, event_type, exchange, routing_key, correlation_id, body,"
                " headers, attempts FROM outbox"
                " WHERE published_at IS NULL AND next_attempt_at <= now()"
                " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch,
            )
            if not rows:
                return False
            failpoint("before_publish")
            units = messages_of(rows)
            results = await asyncio.gather(
                *(self._publish(unit) for unit in units), return_exceptions=True
            )
            failpoint("after_publish")
            done = [
                row["id"]
                for unit, result in zip(units, results, strict=True)
                if result is None
                for row in unit
            ]
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", done
            )
            for unit, result in zip(units, results, strict=True):
                if isinstance(result, BaseException):
                    for row in unit:
                        await self._back_off(conn, row, result)
            return len(done) == len(rows) == self._batch

    async def _publish(self, unit: list[asyncpg.Record]) -> None:
        first = unit[0]
        if len(unit) == 1:
            await self._publisher.publish(
                first["exchange"],
                first["routing_key"],
                first["body"],
                message_id=first["event_id"],
                event_type=first["event_type"],
                correlation_id=first["correlation_id"],
                headers=first["headers"],
                mandatory=first["headers"] is not None,  # dead letters must land
            )
            return
        ids = [row["event_id"] for row in unit]
        await self._publisher.publish(
            first["exchange"],
            first["routing_key"],
            b"[" + b",".join(row["body"] for row in unit) + b"]",
            # the same events claimed again (a crash before they were marked) may form
            # another batch: each event's own id is what the consumer's inbox keys on
            message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "linkwell-batch:" + ",".join(ids))),
            event_type=first["event_type"],
            content_type=BATCH_CONTENT_TYPE,
        )

    @staticmethod
    async def _back_off(
        conn: asyncpg.Connection, row: asyncpg.Record, error: BaseException
    ) -> None:
        """This row waits, backing off; the rest of the outbox moves on."""
        delay = min(0.5 * 2 ** row["attempts"], 30.0)
        await conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2,"
            " next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
            row["id"],
            f"{type(error).__name__}: {error}"[:500],
            delay,
        )
        log.warning(
            "outbox_publish_failed",
            event_id=row["event_id"],
            error=type(error).__name__,
            retry_in=delay,
        )
