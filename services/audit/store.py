"""audit's named queries: append a record to the chain, read it back, by key."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from .domain import GENESIS, Record, chain_hash

# one writer at a time extends the chain (any replica): the key is the schema's
_CHAIN_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.audit_chain'))"
# the chain's end (seq, hash) as this transaction left it, in ``UnitOfWork.shared``: set
# only once the lock is held, so present means locked
_CHAIN_END = "audit.chain_end"
# the records this transaction queued, in ``UnitOfWork.shared``: (record, prev_hash, hash)
_QUEUED = "audit.queued"
_COLUMNS = (
    "seq, event_id, source, action, recipient_kind, recipient_org, referral_id, person_id,"
    " by_service, by_kind, by_whom, at, detail, prev_hash, hash"
)


def record_of(row: asyncpg.Record) -> Record:
    detail = row["detail"]
    if isinstance(detail, str):
        detail = json.loads(detail)
    return Record(
        seq=row["seq"],
        event_id=row["event_id"],
        source=row["source"],
        action=row["action"],
        recipient_kind=row["recipient_kind"],
        recipient_org=row["recipient_org"],
        referral_id=row["referral_id"],
        person_id=row["person_id"],
        by_service=row["by_service"],
        by_kind=row["by_kind"],
        by=row["by_whom"],
        at=row["at"],
        detail=detail,
    )


class AuditStore:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def append(self, fields: dict[str, Any], shared: dict[str, Any]) -> Record | None:
        """Add a record at the chain's end; None if its event id is already in the trail
        (then the chain's end stays where it was). The chain is locked and its end read
        once per transaction, by its first append: ``shared`` (the transaction's,
        ``UnitOfWork.shared``) keeps the end for the appends after it."""
        end = await self._end(shared)
        seq, previous = end
        record = Record(seq=seq + 1, **fields)
        digest = chain_hash(previous, record)
        if not await self.insert(record, previous, digest):
            shared[_CHAIN_END] = end
            return None
        shared[_CHAIN_END] = (record.seq, digest)
        return record

    async def queue(self, fields: dict[str, Any], shared: dict[str, Any]) -> Record:
        """Place a record at the chain's end, as ``append`` does, but keep it in ``shared``
        for ``insert_queued`` to store with the others of the transaction (no statement,
        but the first's lock and end of the chain)."""
        seq, previous = await self._end(shared)
        record = Record(seq=seq + 1, **fields)
        digest = chain_hash(previous, record)
        shared.setdefault(_QUEUED, []).append((record, previous, digest))
        shared[_CHAIN_END] = (record.seq, digest)
        return record

    async def insert_queued(self, shared: dict[str, Any]) -> int:
        """One statement (none if nothing is queued): store every record ``queue`` kept in
        ``shared``, with its previous hash and its hash; how many. A record whose event id
        is already in the trail fails the statement, and so the transaction: none is
        skipped, which would leave a gap in the chain."""
        queued = shared.pop(_QUEUED, [])
        if not queued:
            return 0
        # text arrays only, cast in the statement: no type for the driver to look up
        columns: list[list[str | None]] = [[] for _ in range(15)]
        for record, previous, digest in queued:
            values = (*_values(record), previous, digest)
            for column, value in zip(columns, values, strict=True):
                column.append(_text(value))
        await self.conn.execute(
            f"INSERT INTO audit_record ({_COLUMNS})"
            " SELECT s::bigint, e, src, a, rk, ro, r::uuid, p::uuid, bs, bk, bw, t::timestamptz,"
            " d::jsonb, ph, h FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            " $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],"
            " $11::text[], $12::text[], $13::text[], $14::text[], $15::text[])"
            " AS q(s, e, src, a, rk, ro, r, p, bs, bk, bw, t, d, ph, h)",
            *columns,
        )
        return len(queued)

    async def _end(self, shared: dict[str, Any]) -> tuple[int, str]:
        """The chain's end as this transaction left it; the first time, having locked the
        chain and read its end (two statements)."""
        end = shared.get(_CHAIN_END)
        if end is None:
            await self.lock_chain()
            end = await self.chain_end()
        return end

    async def lock_chain(self) -> None:
        """One statement: take the chain's lock until the transaction ends (one writer at
        a time, on any replica)."""
        await self.conn.execute(_CHAIN_LOCK)

    async def chain_end(self) -> tuple[int, str]:
        """One statement: the last record's seq and hash; (0, GENESIS) for an empty trail.
        Read under the chain's lock, so nothing is appended after it but by this
        transaction."""
        last = await self.conn.fetchrow(
            "SELECT seq, hash FROM audit_record ORDER BY seq DESC LIMIT 1"
        )
        return (last["seq"], last["hash"]) if last else (0, GENESIS)

    async def insert(self, record: Record, previous: str, digest: str) -> bool:
        """One statement: store the record with its previous hash and its hash; False
        (nothing stored) if its event id is already in the trail."""
        stored = await self.conn.fetchval(
            f"INSERT INTO audit_record ({_COLUMNS}) VALUES"
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::text::jsonb, $14, $15)"
            " ON CONFLICT (event_id) DO NOTHING RETURNING seq",
            *_values(record),
            previous,
            digest,
        )
        return stored is not None


def _text(value: Any) -> str | None:
    """A column value as PostgreSQL reads it back exactly (a time with its zone, to the
    microsecond)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # a seq, a UUID


def _values(record: Record) -> tuple[Any, ...]:
    """The record's column values, in ``_COLUMNS`` order, up to its detail (as JSON text)."""
    return (
        record.seq,
        record.event_id,
        record.source,
        record.action,
        record.recipient_kind,
        record.recipient_org,
        record.referral_id,
        record.person_id,
        record.by_service,
        record.by_kind,
        record.by,
        record.at,
        json.dumps(dict(record.detail), sort_keys=True),
    )


async def chain(conn: asyncpg.Connection, schema: str) -> list[tuple[Record, str, str]]:
    rows = await conn.fetch(f'SELECT {_COLUMNS} FROM "{schema}".audit_record ORDER BY seq')
    return [(record_of(r), r["prev_hash"], r["hash"]) for r in rows]


async def query(
    conn: asyncpg.Connection,
    schema: str,
    *,
    person: uuid.UUID | None = None,
    referral: uuid.UUID | None = None,
    org: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[Record]:
    where, args = [], []
    for column, value in (("person_id", person), ("referral_id", referral), ("recipient_org", org)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if since is not None:
        args.append(since)
        where.append(f"at >= ${len(args)}")
    if until is not None:
        args.append(until)
        where.append(f"at < ${len(args)}")
    args.append(limit)
    sql = (
        f'SELECT {_COLUMNS} FROM "{schema}".audit_record'
        f"{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY seq LIMIT ${len(args)}"
    )
    return [record_of(r) for r in await conn.fetch(sql, *args)]
