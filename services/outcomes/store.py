"""outcomes' named queries: what it knows of each referral, its timeline, and what has
been written to the GP record."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from contracts.enums import AgencyType, ClosureReason, ContactMode, ContactOutcome, WritebackFact
from contracts.events import ContactRecorded

from .domain import Closure, Contact, Episode


class Referrals:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def lock(self, referral_id: uuid.UUID) -> None:
        """Every change to a referral happens under its row lock, so two outcomes
        processes never both miss (or both send) a writeback."""
        await self.conn.execute(
            "INSERT INTO referral (referral_id) VALUES ($1) ON CONFLICT DO NOTHING", referral_id
        )
        await self.conn.execute(
            "SELECT 1 FROM referral WHERE referral_id = $1 FOR UPDATE", referral_id
        )

    async def accepted(
        self,
        referral_id: uuid.UUID,
        *,
        practice: str,
        nhs_number: str,
        agency_type: str,
        pcn: str,
        needs: list[str],
        at: datetime,
    ) -> None:
        await self.conn.execute(
            "UPDATE referral SET registered_practice = $2, nhs_number = $3, agency_type = $4,"
            " pcn = $5, needs = $6, accepted_at = $7 WHERE referral_id = $1",
            referral_id,
            practice,
            nhs_number,
            agency_type,
            pcn,
            needs,
            at,
        )

    async def waitlisted(self, referral_id: uuid.UUID, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE referral SET waitlisted_at = $2 WHERE referral_id = $1", referral_id, at
        )

    async def assigned(self, referral_id: uuid.UUID, worker_id: str, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE referral SET assigned_at = $2, link_worker_id = $3 WHERE referral_id = $1",
            referral_id,
            at,
            worker_id,
        )

    async def closed(self, referral_id: uuid.UUID, at: datetime, reason: str) -> None:
        await self.conn.execute(
            "UPDATE referral SET closed_at = $2, close_reason = $3"
            " WHERE referral_id = $1 AND closed_at IS NULL",
            referral_id,
            at,
            reason,
        )

    async def pcn_of(self, referral_id: uuid.UUID) -> str | None:
        return await self.conn.fetchval(
            "SELECT pcn FROM referral WHERE referral_id = $1", referral_id
        )

    async def episode(self, referral_id: uuid.UUID) -> Episode | None:
        """The referral's episode, or None until intake's announcement has arrived."""
        row = await self.conn.fetchrow("SELECT * FROM referral WHERE referral_id = $1", referral_id)
        if row is None or row["accepted_at"] is None:
            return None
        contacts = await self.conn.fetch(
            "SELECT occurred_at, detail FROM timeline WHERE referral_id = $1"
            " AND event_type = $2 ORDER BY occurred_at",
            referral_id,
            ContactRecorded.TYPE,
        )
        closure = None
        if row["closed_at"] is not None:
            closure = Closure(ClosureReason(row["close_reason"]), row["closed_at"])
        return Episode(
            referral_id=str(referral_id),
            registered_practice=row["registered_practice"],
            nhs_number=row["nhs_number"],
            agency_type=AgencyType(row["agency_type"]),
            pcn=row["pcn"],
            needs=tuple(row["needs"]),
            accepted_at=row["accepted_at"],
            contacts=tuple(
                Contact(
                    c["occurred_at"],
                    ContactMode(c["detail"]["mode"]),
                    ContactOutcome(c["detail"]["outcome"]),
                )
                for c in contacts
            ),
            closure=closure,
        )


class Timeline:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def add(
        self,
        referral_id: uuid.UUID,
        *,
        source: str,
        event_id: str,
        event_type: str,
        occurred_at: datetime,
        detail: dict[str, Any],
    ) -> None:
        await self.conn.execute(
            "INSERT INTO timeline (referral_id, source, event_id, event_type, occurred_at,"
            " detail) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, event_id) DO NOTHING",
            referral_id,
            source,
            event_id,
            event_type,
            occurred_at,
            detail,
        )


class GpRecord:
    """What has been written back to the GP record: one row per referral and fact."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def facts_written(self, referral_id: uuid.UUID) -> set[WritebackFact]:
        rows = await self.conn.fetch(
            "SELECT fact FROM writeback WHERE referral_id = $1", referral_id
        )
        return {WritebackFact(r["fact"]) for r in rows}

    async def written(
        self, referral_id: uuid.UUID, fact: str, event_id: str, codes: list[str]
    ) -> None:
        await self.conn.execute(
            "INSERT INTO writeback (referral_id, fact, event_id, codes) VALUES ($1, $2, $3, $4)",
            referral_id,
            fact,
            event_id,
            codes,
        )


class OutcomesStore:
    def __init__(self, conn: asyncpg.Connection):
        self.referrals = Referrals(conn)
        self.timeline = Timeline(conn)
        self.gp_record = GpRecord(conn)
