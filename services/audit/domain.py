"""The audit trail's chain, pure: the canonical form of a record and its hash.

Each record's hash is SHA-256 over the previous record's hash (hex) and the record's
canonical JSON (keys sorted, no whitespace, UTF-8, times in UTC with microseconds), so
changing, removing or reordering any record breaks every hash after it. The first
record's previous hash is ``GENESIS``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True)
class Record:
    """One entry of the trail, as stored (``seq`` is its place in the chain)."""

    seq: int
    event_id: str
    source: str
    action: str
    recipient_kind: str
    recipient_org: str | None
    referral_id: uuid.UUID | None
    person_id: uuid.UUID | None
    by_service: str
    by_kind: str
    by: str | None
    at: datetime
    detail: Mapping[str, str] = field(default_factory=dict)

    def canonical(self) -> bytes:
        return canonical_json(
            {
                "seq": self.seq,
                "event_id": self.event_id,
                "source": self.source,
                "action": self.action,
                "recipient_kind": self.recipient_kind,
                "recipient_org": self.recipient_org,
                "referral_id": str(self.referral_id) if self.referral_id else None,
                "person_id": str(self.person_id) if self.person_id else None,
                "by_service": self.by_service,
                "by_kind": self.by_kind,
                "by": self.by,
                "at": utc(self.at),
                "detail": dict(self.detail),
            }
        )


def utc(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("an audit time must carry its zone")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def chain_hash(previous: str, record: Record) -> str:
    return hashlib.sha256(previous.encode("ascii") + record.canonical()).hexdigest()


@dataclass(frozen=True)
class Break:
    """Where the chain first fails: the record whose hash does not follow."""

    seq: int
    reason: str


def verify(rows: Iterable[tuple[Record, str, str]]) -> tuple[int, Break | None]:
    """Recompute the chain over ``(record, prev_hash, hash)`` in ``seq`` order. Returns how
    many records were checked and the first break, or None."""
    previous, expected_seq, count = GENESIS, 1, 0
    for record, prev_hash, stored in rows:
        count += 1
        if record.seq != expected_seq:
            return count, Break(record.seq, f"expected record {expected_seq}: one is missing")
        if prev_hash != previous:
            return count, Break(record.seq, "its previous hash is not the record before's")
        if chain_hash(previous, record) != stored:
            return count, Break(record.seq, "its content does not match its hash")
        previous, expected_seq = stored, expected_seq + 1
    return count, None
