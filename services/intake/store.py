"""intake's named queries: referrals (the only full copy of each) and the audit of every
submission's outcome (without personal data)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Submission:
    outcome: str  # accepted, rejected, duplicate
    referral_id: uuid.UUID | None
    reason_codes: tuple[str, ...]


class Referrals:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def add(
        self,
        referral_id: uuid.UUID,
        *,
        sender: str,
        reference: str,
        event_id: str,
        agency_type: str,
        practice: str,
        pcn: str,
        pathway: str,
        needs: list[str],
        submission: dict[str, Any],
        accepted_at: datetime,
    ) -> bool:
        """False if the sender already sent a referral with this reference."""
        added = await self.conn.fetchval(
            "INSERT INTO referral (referral_id, sender, sender_reference, submission_event_id,"
            " agency_type, registered_practice, pcn, pathway, needs, submission, accepted_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            " ON CONFLICT (sender, sender_reference) DO NOTHING RETURNING 1",
            referral_id,
            sender,
            reference,
            event_id,
            agency_type,
            practice,
            pcn,
            pathway,
            needs,
            submission,
            accepted_at,
        )
        return added is not None

    async def by_reference(self, sender: str, reference: str) -> uuid.UUID | None:
        return await self.conn.fetchval(
            "SELECT referral_id FROM referral WHERE sender = $1 AND sender_reference = $2",
            sender,
            reference,
        )


class Submissions:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def record(
        self,
        *,
        source: str,
        event_id: str,
        sender: str,
        reference: str | None,
        outcome: str,
        referral_id: uuid.UUID | None = None,
        reason_codes: Iterable[str] = (),
    ) -> None:
        await self.conn.execute(
            "INSERT INTO submission (source, event_id, sender, sender_reference, outcome,"
            " referral_id, reason_codes) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            source,
            event_id,
            sender,
            reference,
            outcome,
            referral_id,
            list(reason_codes),
        )

    async def get(self, source: str, event_id: str) -> Submission | None:
        row = await self.conn.fetchrow(
            "SELECT outcome, referral_id, reason_codes FROM submission"
            " WHERE source = $1 AND event_id = $2",
            source,
            event_id,
        )
        if row is None:
            return None
        return Submission(row["outcome"], row["referral_id"], tuple(row["reason_codes"]))


class IntakeStore:
    def __init__(self, conn: asyncpg.Connection):
        self.referrals = Referrals(conn)
        self.submissions = Submissions(conn)
