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


@dataclass(frozen=True)
class Accepted:
    """What ``Referrals.accept`` came to."""

    person_id: uuid.UUID
    added: bool  # False: the sender already sent a referral with this reference
    conflict: bool  # the NHS number is also held for someone with another date of birth


class Referrals:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def accept(
        self,
        referral_id: uuid.UUID,
        *,
        nhs_number: str | None,
        born: date,
        source: str,
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
    ) -> Accepted:
        """One statement: the person's id, the referral added with it, and, if it was added,
        the submission recorded as accepted (as ``Submissions.record`` would). One person
        per NHS number and date of birth, whoever refers them (``domain.same_person``): made
        the first time they are referred, with whether the NHS number is also held for
        someone with another date of birth (``conflict``); a person without an NHS number
        gets a row of their own, never matched to another. Not added: the sender already
        sent a referral with this reference (nothing is recorded)."""
        person = "INSERT INTO person (person_id, nhs_number, date_of_birth) VALUES ($1, $2, $3)" + (
            " ON CONFLICT (nhs_number, date_of_birth)"
            " DO UPDATE SET nhs_number = excluded.nhs_number"
            if nhs_number is not None
            else ""
        )
        row = await self.conn.fetchrow(
            f"WITH found AS ({person} RETURNING person_id),"
            " added AS (INSERT INTO referral (referral_id, sender, sender_reference,"
            " submission_event_id, agency_type, registered_practice, pcn, pathway, needs,"
            " submission, accepted_at, person_id) SELECT $4, $5, $6, $7, $8, $9, $10, $11,"
            " $12, $13, $14, person_id FROM found"
            " ON CONFLICT (sender, sender_reference) DO NOTHING RETURNING 1),"
            " recorded AS (INSERT INTO submission (source, event_id, sender, sender_reference,"
            " outcome, referral_id, reason_codes, reasons) SELECT $15, $7, $5, $6, 'accepted',"
            " $4, '{}', '[]' WHERE EXISTS (SELECT 1 FROM added))"
            " SELECT (SELECT person_id FROM found) AS person_id,"
            " EXISTS (SELECT 1 FROM added) AS added, $2::text IS NOT NULL AND EXISTS"
            " (SELECT 1 FROM person WHERE nhs_number = $2 AND date_of_birth IS DISTINCT FROM $3)"
            " AS conflict",
            uuid.uuid4(),
            nhs_number,
            born,
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
            source,
        )
        return Accepted(row["person_id"], row["added"], row["conflict"])

    async def ended(self, referral_id: uuid.UUID, at: datetime) -> bool:
        """The referral ended (closed or withdrawn) at ``at``: the clock of its retention
        starts (the first end told stands). False if intake does not know it."""
        row = await self.conn.fetchval(
            "UPDATE referral SET ended_at = coalesce(ended_at, $2) WHERE referral_id = $1"
            " RETURNING 1",
            referral_id,
            at,
        )
        return row is not None

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
        self.referrals = Referrals(conn)
        self.submissions = Submissions(conn)
        self.subjects = Subjects(conn)


class Subjects:
    """What intake holds about one person, for their rights (``rights``)."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def find(self, nhs_number: str, born: date) -> list[uuid.UUID]:
        rows = await self.conn.fetch(
            "SELECT r.referral_id FROM referral r JOIN person p USING (person_id)"
            " WHERE p.nhs_number = $1 AND p.date_of_birth = $2",
            nhs_number,
            born,
        )
        return [r["referral_id"] for r in rows]

    async def referrals(self, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT referral_id, sender, sender_reference, accepted_at, submission"
            " FROM referral WHERE referral_id = ANY($1::uuid[]) ORDER BY accepted_at",
            ids,
        )
        return [dict(r) for r in rows]

    async def submissions(self, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT referral_id, sender, outcome, received_at FROM submission"
            " WHERE referral_id = ANY($1::uuid[]) ORDER BY received_at",
            ids,
        )
        return [dict(r) for r in rows]

    async def rectify(
        self, referral_id: uuid.UUID, nhs_number: str | None, born: date | None
    ) -> list[uuid.UUID]:
        """Correct the person of this referral (every referral of theirs): their NHS number
        and/or date of birth. When the corrected identity is already someone's, the two are
        one person. Returns the referrals corrected."""
        old = await self.conn.fetchrow(
            "SELECT p.person_id, p.nhs_number, p.date_of_birth FROM referral r"
            " JOIN person p USING (person_id) WHERE r.referral_id = $1 FOR UPDATE OF p",
            referral_id,
        )
        if old is None:
            return []
        nhs = nhs_number or old["nhs_number"]
        dob = born or old["date_of_birth"]
        same = await self.conn.fetchval(
            "SELECT person_id FROM person WHERE nhs_number = $1 AND date_of_birth = $2"
            " AND person_id <> $3",
            nhs,
            dob,
            old["person_id"],
        )
        person = old["person_id"]
        if same is not None:
            await self.conn.execute(
                "UPDATE referral SET person_id = $1 WHERE person_id = $2", same, person
            )
            await self.conn.execute("DELETE FROM person WHERE person_id = $1", person)
            person = same
        else:
            await self.conn.execute(
                "UPDATE person SET nhs_number = $2, date_of_birth = $3 WHERE person_id = $1",
                person,
                nhs,
                dob,
            )
        rows = await self.conn.fetch(
            "UPDATE referral SET submission = jsonb_set(jsonb_set(submission,"
            " '{person,nhs_number}', coalesce(to_jsonb($2::text), 'null'::jsonb)),"
            " '{person,date_of_birth}', to_jsonb($3::text))"
            " WHERE person_id = $1 RETURNING referral_id",
            person,
            nhs,
            dob.isoformat(),
        )
        return [r["referral_id"] for r in rows]

    async def erase_contact(self, ids: list[uuid.UUID]) -> int:
        """The person's contact details removed from the stored referrals."""
        result = await self.conn.execute(
            "UPDATE referral SET submission = submission #- '{person,contact}'"
            " WHERE referral_id = ANY($1::uuid[]) AND submission -> 'person' ? 'contact'",
            ids,
        )
        return int(result.split()[-1])
