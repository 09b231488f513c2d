"""The FHIR door's named queries, on the gateway's tables (``submission`` and
``fhir_step``, migrations 0005_fhir_referrals and 0009_fhir_step_codes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..store import Standing
from .mapping import Coded, Step


@dataclass(frozen=True)
class Held:
    """One FHIR referral of a sender, and where it stands."""

    standing: Standing
    fhir_id: uuid.UUID
    sender_reference: str
    task_status: str | None


_HELD = (
    "SELECT reference, step, step_at, submitted_at, referral_id, withdrawn_at, organisation,"
    " fhir_id, sender_reference, task_status FROM submission"
)


def _held(row: asyncpg.Record) -> Held:
    values = dict(row)
    fhir_id, sender_reference, task_status = (
        values.pop("fhir_id"),
        values.pop("sender_reference"),
        values.pop("task_status"),
    )
    return Held(Standing(**values), fhir_id, sender_reference, task_status)


class FhirReferrals:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def mark(
        self, reference: str, fhir_id: uuid.UUID, sender_reference: str, patient: bytes | None
    ) -> None:
        await self.conn.execute(
            "UPDATE submission SET fhir_id = $2, sender_reference = $3, patient_digest = $4"
            " WHERE reference = $1",
            reference,
            fhir_id,
            sender_reference,
            patient,
        )

    async def by_id(self, fhir_id: uuid.UUID, org: str, *, lock: bool = False) -> Held | None:
        """One of this sender's FHIR referrals (never another's)."""
        row = await self.conn.fetchrow(
            _HELD + " WHERE fhir_id = $1 AND organisation = $2" + (" FOR UPDATE" if lock else ""),
            fhir_id,
            org,
        )
        return _held(row) if row else None

    async def by_sender_reference(
        self, org: str, sender_reference: str, *, lock: bool = False
    ) -> Held | None:
        row = await self.conn.fetchrow(
            _HELD
            + " WHERE organisation = $1 AND sender_reference = $2 AND fhir_id IS NOT NULL"
            + (" FOR UPDATE" if lock else ""),
            org,
            sender_reference,
        )
        return _held(row) if row else None

    async def by_patient(self, org: str, patient: bytes, limit: int = 100) -> list[Held]:
        rows = await self.conn.fetch(
            _HELD + " WHERE organisation = $1 AND patient_digest = $2"
            " ORDER BY submitted_at DESC LIMIT $3",
            org,
            patient,
            limit,
        )
        return [_held(r) for r in rows]

    async def changed_since(self, org: str, since: datetime | None, limit: int = 200) -> list[Held]:
        """This sender's FHIR referrals told anything after ``since`` (or sent after it)."""
        rows = await self.conn.fetch(
            _HELD + " s WHERE organisation = $1 AND fhir_id IS NOT NULL AND ($2::timestamptz"
            " IS NULL OR submitted_at > $2 OR EXISTS (SELECT 1 FROM fhir_step f WHERE"
            " f.reference = s.reference AND f.told_at > $2)) ORDER BY submitted_at LIMIT $3",
            org,
            since,
            limit,
        )
        return [_held(r) for r in rows]

    async def steps(self, reference: str) -> list[Step]:
        rows = await self.conn.fetch(
            "SELECT status, at, reason, message, codes FROM fhir_step WHERE reference = $1"
            " ORDER BY at, seq",
            reference,
        )
        return [
            Step(
                r["status"],
                r["at"],
                r["reason"],
                r["message"],
                tuple(Coded(c["code"], c["display"]) for c in r["codes"]),
            )
            for r in rows
        ]

    async def told(
        self,
        *,
        event_id: str | None,
        referral_id: uuid.UUID | None,
        status: str,
        at: datetime,
        reason: str | None,
        message: str | None,
        codes: list[dict[str, str]] | None = None,
    ) -> None:
        """A step told about one of the FHIR door's referrals (nothing for the others);
        the same step told twice is kept once. ``codes``: code and display of each SNOMED
        CT code written back to the GP record (the closure's), nothing else."""
        await self.conn.execute(
            "INSERT INTO fhir_step (reference, status, reason, message, at, codes)"
            " SELECT reference, $3, $4, $5, $6, $7 FROM submission WHERE fhir_id IS NOT NULL AND"
            " (($1::text IS NOT NULL AND event_id = $1) OR ($1::text IS NULL AND"
            " referral_id = $2)) ON CONFLICT (reference, status, at) DO NOTHING",
            event_id,
            referral_id,
            status,
            reason,
            message,
            at,
            [{"code": c["code"], "display": c["display"]} for c in codes or []],
        )
