"""The FHIR door's named queries, on the gateway's tables (``submission`` and
``fhir_step``, migrations 0005_fhir_referrals and 0009_fhir_step_codes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..store import Standing
from .mapping import Coded, Step
from .push import Delivery


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
        self,
        reference: str,
        fhir_id: uuid.UUID,
        sender_reference: str,
        patient: bytes | None,
        request_message_id: str | None = None,
    ) -> None:
        await self.conn.execute(
            "UPDATE submission SET fhir_id = $2, sender_reference = $3, patient_digest = $4,"
            " request_message_id = $5 WHERE reference = $1",
            reference,
            fhir_id,
            sender_reference,
            patient,
            request_message_id,
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

    async def queue_pushes(
        self,
        *,
        event_id: str | None,
        referral_id: uuid.UUID | None,
        status: str,
        at: datetime,
        reason: str | None,
    ) -> int:
        """A step of a referral that came by $process-message, queued for each endpoint
        its own organisation's live clients registered (never another organisation's);
        the same step told twice is queued once. Returns how many were queued."""
        done = await self.conn.execute(
            "INSERT INTO fhir_delivery (reference, client_id, endpoint, status, reason, at)"
            " SELECT s.reference, c.id, c.endpoint_url, $3, $4, $5 FROM submission s"
            " JOIN api_client c ON c.organisation = s.organisation"
            " WHERE s.fhir_id IS NOT NULL AND s.request_message_id IS NOT NULL"
            " AND c.endpoint_url IS NOT NULL AND c.revoked_at IS NULL"
            " AND (c.expires_at IS NULL OR c.expires_at > now())"
            " AND (($1::text IS NOT NULL AND s.event_id = $1) OR ($1::text IS NULL AND"
            " s.referral_id = $2)) ON CONFLICT (reference, client_id, status, at) DO NOTHING",
            event_id,
            referral_id,
            status,
            reason,
            at,
        )
        return int(done.split()[-1])

    async def due_pushes(self, limit: int) -> list[Delivery]:
        """Pending deliveries due now, each the earliest pending one of its referral and
        endpoint (a step never overtakes the one before it), locked for this pass."""
        rows = await self.conn.fetch(
            "SELECT d.id, d.reference, d.client_id, d.endpoint, d.status, d.reason, d.at,"
            " d.attempts, d.created_at, s.fhir_id, s.sender_reference, s.organisation,"
            " s.submitted_at, s.request_message_id, s.referral_id, f.codes FROM fhir_delivery d"
            " JOIN submission s ON s.reference = d.reference"
            " LEFT JOIN fhir_step f ON f.reference = d.reference AND f.status = d.status"
            " AND f.at = d.at"
            " WHERE d.state = 'pending' AND d.due_at <= now() AND NOT EXISTS (SELECT 1 FROM"
            " fhir_delivery e WHERE e.state = 'pending' AND e.reference = d.reference AND"
            " e.client_id = d.client_id AND e.id < d.id)"
            " ORDER BY d.due_at, d.id LIMIT $1 FOR UPDATE OF d SKIP LOCKED",
            limit,
        )
        return [
            Delivery(
                **{k: v for k, v in r.items() if k != "codes"},
                codes=tuple(Coded(c["code"], c["display"]) for c in r["codes"] or []),
            )
            for r in rows
        ]

    async def next_push_in(self) -> float | None:
        """Seconds until the next pending delivery is due (None: nothing pending)."""
        return await self.conn.fetchval(
            "SELECT greatest(extract(epoch FROM min(due_at) - now()), 0)::float8"
            " FROM fhir_delivery WHERE state = 'pending'"
        )

    async def lock_push(self, delivery_id: int, attempts: int) -> bool:
        """Hold one delivery for its send, if it is still pending as it was claimed."""
        return (
            await self.conn.fetchval(
                "SELECT 1 FROM fhir_delivery WHERE id = $1 AND state = 'pending'"
                " AND attempts = $2 FOR UPDATE SKIP LOCKED",
                delivery_id,
                attempts,
            )
            is not None
        )

    async def push_sent(self, delivery_id: int) -> None:
        await self.conn.execute(
            "UPDATE fhir_delivery SET state = 'sent', attempts = attempts + 1,"
            " finished_at = now(), last_error = NULL WHERE id = $1",
            delivery_id,
        )

    async def push_failed(self, delivery_id: int, error: str, retry_in: float) -> None:
        await self.conn.execute(
            "UPDATE fhir_delivery SET attempts = attempts + 1, last_error = $2,"
            " due_at = now() + make_interval(secs => $3) WHERE id = $1",
            delivery_id,
            error,
            retry_in,
        )

    async def push_given_up(self, delivery_id: int, error: str) -> None:
        await self.conn.execute(
            "UPDATE fhir_delivery SET state = 'given_up', attempts = attempts + 1,"
            " last_error = $2, finished_at = now() WHERE id = $1",
            delivery_id,
            error,
        )
