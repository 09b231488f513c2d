"""intake's named queries: people (one per NHS number), referrals (the only full copy of
each) and the audit of every submission's outcome (without personal data)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Known:
    referral_id: uuid.UUID
    submission_event_id: str


@dataclass(frozen=True)
class Submission:
    """What a submission came to: the referral it made, or the reasons it was refused."""

    referral: Known | None
    reasons: list[dict[str, Any]]


class People:
    """One person per NHS number and date of birth, whoever refers them
    (``domain.same_person``)."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def id_for(self, nhs_number: str, born: date) -> tuple[uuid.UUID, bool]:
        """The person's id, made the first time they are referred, and whether the NHS
        number is also held for someone with another date of birth (one statement)."""
        row = await self.conn.fetchrow(
            "WITH found AS (INSERT INTO person (person_id, nhs_number, date_of_birth)"
            " VALUES ($1, $2, $3) ON CONFLICT (nhs_number, date_of_birth)"
            " DO UPDATE SET nhs_number = excluded.nhs_number RETURNING person_id)"
            " SELECT (SELECT person_id FROM found) AS person_id, EXISTS (SELECT 1 FROM person"
            " WHERE nhs_number = $2 AND date_of_birth IS DISTINCT FROM $3) AS conflict",
            uuid.uuid4(),
            nhs_number,
            born,
        )
        return row["person_id"], row["conflict"]

    async def unidentified(self, person_id: uuid.UUID, born: date) -> None:
        """A person without an NHS number: their own row, never matched to another."""
        await self.conn.execute(
            "INSERT INTO person (person_id, nhs_number, date_of_birth) VALUES ($1, NULL, $2)",
            person_id,
            born,
        )


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
        person_id: uuid.UUID,
    ) -> bool:
        """False if the sender already sent a referral with this reference."""
        added = await self.conn.fetchval(
            "INSERT INTO referral (referral_id, sender, sender_reference, submission_event_id,"
            " agency_type, registered_practice, pcn, pathway, needs, submission, accepted_at,"
            " person_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
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
            person_id,
        )
        return added is not None

    async def by_reference(self, sender: str, reference: str) -> Known | None:
        row = await self.conn.fetchrow(
            "SELECT referral_id, submission_event_id FROM referral"
            " WHERE sender = $1 AND sender_reference = $2",
            sender,
            reference,
        )
        return Known(row["referral_id"], row["submission_event_id"]) if row else None


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
        reasons: Iterable[dict[str, Any]] = (),
    ) -> None:
        reasons = list(reasons)
        await self.conn.execute(
            "INSERT INTO submission (source, event_id, sender, sender_reference, outcome,"
            " referral_id, reason_codes, reasons) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            source,
            event_id,
            sender,
            reference,
            outcome,
            referral_id,
            [r["code"] for r in reasons],
            reasons,
        )

    async def get(self, source: str, event_id: str) -> Submission | None:
        row = await self.conn.fetchrow(
            "SELECT s.reasons, r.referral_id, r.submission_event_id FROM submission s"
            " LEFT JOIN referral r ON r.referral_id = s.referral_id"
            " WHERE s.source = $1 AND s.event_id = $2",
            source,
            event_id,
        )
        if row is None:
            return None
        made = row["referral_id"]
        return Submission(Known(made, row["submission_event_id"]) if made else None, row["reasons"])


class IntakeStore:
    def __init__(self, conn: asyncpg.Connection):
        self.people = People(conn)
        self.referrals = Referrals(conn)
        self.submissions = Submissions(conn)
