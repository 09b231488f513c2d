"""outcomes' named queries: what it knows of each referral and its episode, the timeline,
measurements, and what has been written to the GP record."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from contracts.enums import (
    AgencyType,
    ClosureReason,
    ContactMode,
    ContactOutcome,
    GpSharing,
    Instrument,
    MeasurePoint,
    WithdrawnBy,
    WritebackFact,
)
from contracts.events import ContactRecorded, NoteShared, PlanAgreed

from .domain import Closure, Contact, Episode, Note, Plan
from .wellbeing import Measurement

WITHDRAWN = "withdrawn"  # close_reason of a withdrawn referral


@dataclass(frozen=True)
class Known:
    """What outcomes knows of a referral, as the handlers need it."""

    referral_id: uuid.UUID
    episode_id: uuid.UUID  # the referral that holds the episode (itself, unless it joined)
    pcn: str | None
    sender: str | None
    accepted: bool
    closed_at: datetime | None
    held: bool
    in_progress: bool
    received_at: datetime | None = None  # when intake accepted it (Linkwell received it)

    @property
    def closed(self) -> bool:
        return self.closed_at is not None


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

    async def known(self, referral_id: uuid.UUID) -> Known | None:
        row = await self.conn.fetchrow(
            "SELECT referral_id, coalesce(episode_referral_id, referral_id) AS episode_id, pcn,"
            " sender, accepted_at IS NOT NULL AS accepted, closed_at,"
            " held_at IS NOT NULL AS held, in_progress_at IS NOT NULL AS in_progress,"
            " accepted_at AS received_at FROM referral WHERE referral_id = $1",
            referral_id,
        )
        return Known(**dict(row)) if row else None

    async def accepted(
        self,
        referral_id: uuid.UUID,
        *,
        practice: str,
        nhs_number: str | None,
        agency_type: str,
        pcn: str,
        needs: list[str],
        at: datetime,
        sender: str,
        gp_sharing: str,
        person_id: uuid.UUID | None,
        pathway: str,
    ) -> None:
        await self.conn.execute(
            "UPDATE referral SET registered_practice = $2, nhs_number = $3, agency_type = $4,"
            " pcn = $5, needs = $6, accepted_at = $7, sender = $8, gp_sharing = $9,"
            " person_id = $10, pathway = $11 WHERE referral_id = $1",
            referral_id,
            practice,
            nhs_number,
            agency_type,
            pcn,
            needs,
            at,
            sender,
            gp_sharing,
            person_id,
            pathway,
        )

    async def confirm_nhs_number(
        self, referral_id: uuid.UUID, nhs_number: str, at: datetime
    ) -> str | None:
        """Give a referral without one its NHS number, as its team confirmed it; the number
        it already had otherwise (the row is unchanged)."""
        return await self.conn.fetchval(
            "WITH set AS (UPDATE referral SET nhs_number = $2, nhs_number_confirmed_at = $3"
            " WHERE referral_id = $1 AND nhs_number IS NULL RETURNING nhs_number)"
            " SELECT coalesce((SELECT nhs_number FROM set),"
            " (SELECT nhs_number FROM referral WHERE referral_id = $1))",
            referral_id,
            nhs_number,
            at,
        )

    async def set(self, referral_id: uuid.UUID, **columns: Any) -> None:
        """Set some of a referral's journey columns (a fixed set: never a sender's names)."""
        allowed = {
            "waitlisted_at", "assigned_at", "link_worker_id", "episode_referral_id",
            "in_progress_at", "held_at",
        }  # fmt: skip
        assert set(columns) <= allowed, set(columns) - allowed
        names = list(columns)
        assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
        await self.conn.execute(
            f"UPDATE referral SET {assignments} WHERE referral_id = $1",
            referral_id,
            *(columns[n] for n in names),
        )

    async def end(
        self,
        referral_id: uuid.UUID,
        at: datetime,
        reason: str,
        withdrawn_by: str | None = None,
        note: str | None = None,
    ) -> bool:
        """Close (or withdraw) an episode; False if it had ended already."""
        ended = await self.conn.fetchval(
            "UPDATE referral SET closed_at = $2, close_reason = $3, withdrawn_by = $4,"
            " end_note = $5, held_at = NULL WHERE referral_id = $1 AND closed_at IS NULL"
            " RETURNING 1",
            referral_id,
            at,
            reason,
            withdrawn_by,
            note,
        )
        if ended is not None:
            # the clock of the record's retention, for it and every referral joined to it
            await self.conn.execute(
                "UPDATE referral SET ended_at = $2 WHERE ended_at IS NULL"
                " AND (referral_id = $1 OR episode_referral_id = $1)",
                referral_id,
                at,
            )
        return ended is not None

    async def members(self, episode_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
        """Every referral of an episode (its own first) with its PCN."""
        rows = await self.conn.fetch(
            "SELECT referral_id, pcn FROM referral WHERE (referral_id = $1"
            " OR (episode_referral_id = $1 AND closed_at IS NULL)) AND pcn IS NOT NULL"
            " ORDER BY referral_id <> $1, accepted_at",
            episode_id,
        )
        return [(r["referral_id"], r["pcn"]) for r in rows]

    async def episode(self, referral_id: uuid.UUID) -> Episode | None:
        """The referral's episode, or None until intake's announcement has arrived."""
        row = await self.conn.fetchrow("SELECT * FROM referral WHERE referral_id = $1", referral_id)
        if row is None or row["accepted_at"] is None:
            return None
        timeline = await self.conn.fetch(
            "SELECT event_id, event_type, occurred_at, detail FROM timeline"
            " WHERE referral_id = $1 AND event_type = ANY($2::text[]) ORDER BY occurred_at, id",
            referral_id,
            [ContactRecorded.TYPE, PlanAgreed.TYPE, NoteShared.TYPE],
        )
        sharing = await self.conn.fetchval(
            "SELECT bool_or(gp_sharing = 'codes_only') FROM referral"
            " WHERE referral_id = $1 OR episode_referral_id = $1",
            referral_id,
        )
        measured = await self.conn.fetch(
            "SELECT event_id, instrument, point, items, taken_at FROM measurement"
            " WHERE referral_id = $1 ORDER BY taken_at",
            referral_id,
        )
        return Episode(
            referral_id=str(referral_id),
            registered_practice=row["registered_practice"],
            nhs_number=row["nhs_number"],
            agency_type=AgencyType(row["agency_type"]),
            pcn=row["pcn"],
            needs=tuple(row["needs"]),
            accepted_at=row["accepted_at"],
            contacts=tuple(
                _contact(t) for t in timeline if t["event_type"] == ContactRecorded.TYPE
            ),
            closure=_closure(row),
            gp_sharing=GpSharing.CODES_ONLY if sharing else GpSharing.CODES_AND_SUMMARIES,
            plans=tuple(_plan(t) for t in timeline if t["event_type"] == PlanAgreed.TYPE),
            notes=tuple(_note(t) for t in timeline if t["event_type"] == NoteShared.TYPE),
            measurements=tuple(
                Measurement(
                    Instrument(m["instrument"]),
                    MeasurePoint(m["point"]),
                    tuple(m["items"]),
                    m["taken_at"],
                    key=m["event_id"],
                )
                for m in measured
            ),
        )


def _contact(t: asyncpg.Record) -> Contact:
    d = t["detail"]
    return Contact(t["occurred_at"], ContactMode(d["mode"]), ContactOutcome(d["outcome"]))


def _plan(t: asyncpg.Record) -> Plan:
    d = t["detail"]
    return Plan(
        t["event_id"],
        d["what_matters"],
        tuple((g["description"], date.fromisoformat(g["review_on"])) for g in d["goals"]),
        tuple((c["name"], c["category"], c["introduced_in_person"]) for c in d["connections"]),
        t["occurred_at"],
    )


def _note(t: asyncpg.Record) -> Note:
    d = t["detail"]
    return Note(
        t["event_id"],
        d["text"],
        tuple((a["title"], a["media_type"], a["size_bytes"]) for a in d["attachments"]),
        t["occurred_at"],
    )


def _closure(row: asyncpg.Record) -> Closure | None:
    if row["closed_at"] is None:
        return None
    if row["close_reason"] == WITHDRAWN:
        by = WithdrawnBy(row["withdrawn_by"]) if row["withdrawn_by"] else None
        return Closure(None, row["closed_at"], by, row["end_note"])
    return Closure(ClosureReason(row["close_reason"]), row["closed_at"])


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

    async def engaged_before(self, referral_id: uuid.UUID) -> bool:
        found = await self.conn.fetchval(
            "SELECT 1 FROM timeline WHERE referral_id = $1 AND event_type = $2"
            " AND detail->>'outcome' = 'engaged' LIMIT 1",
            referral_id,
            ContactRecorded.TYPE,
        )
        return found is not None


class Measurements:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def add(self, referral_id: uuid.UUID, source: str, event_id: str, m: Measurement) -> None:
        await self.conn.execute(
            "INSERT INTO measurement (referral_id, source, event_id, instrument, point, items,"
            " raw_total, metric, bands, taken_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
            " $10) ON CONFLICT DO NOTHING",
            referral_id,
            source,
            event_id,
            m.instrument.value,
            m.point.value,
            list(m.items),
            m.raw,
            m.metric,
            m.bands,
            m.taken_at,
        )


class GpRecord:
    """What has been written back to the GP record: one row per referral, fact and key."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def facts_written(self, referral_id: uuid.UUID) -> set[tuple[WritebackFact, str]]:
        rows = await self.conn.fetch(
            "SELECT fact, key FROM writeback WHERE referral_id = $1", referral_id
        )
        return {(WritebackFact(r["fact"]), r["key"]) for r in rows}

    async def codes_written(self, referral_id: uuid.UUID) -> list[str]:
        """Every SNOMED CT code written back for the episode, each once, in the order
        first written."""
        rows = await self.conn.fetch(
            "SELECT code FROM (SELECT c.code, min(w.created_at) AS first, min(c.n) AS n"
            " FROM writeback w, unnest(w.codes) WITH ORDINALITY AS c(code, n)"
            " WHERE w.referral_id = $1 GROUP BY c.code) AS written ORDER BY first, n, code",
            referral_id,
        )
        return [r["code"] for r in rows]

    async def written(
        self, referral_id: uuid.UUID, fact: str, key: str, event_id: str, codes: list[str]
    ) -> None:
        await self.conn.execute(
            "INSERT INTO writeback (referral_id, fact, key, event_id, codes)"
            " VALUES ($1, $2, $3, $4, $5)",
            referral_id,
            fact,
            key,
            event_id,
            codes,
        )


class Rejections:
    """Intake's refusals, for the reports: who refused what and why, never a person."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def add(
        self,
        *,
        source: str,
        submission_event_id: str,
        sender: str,
        agency_type: str | None,
        practice: str | None,
        pcn: str | None,
        reasons: list[str],
        at: datetime,
    ) -> None:
        await self.conn.execute(
            "INSERT INTO rejection (source, submission_event_id, sender, agency_type,"
            " registered_practice, pcn, reasons, rejected_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            source,
            submission_event_id,
            sender,
            agency_type,
            practice,
            pcn,
            reasons,
            at,
        )


class Roster:
    """Each PCN's roster, as triage holds it (triage decides; this is for the reports)."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def set(
        self, pcn: str, worker_id: str, capacity: int, active: bool, at: datetime
    ) -> None:
        await self.conn.execute(
            "INSERT INTO roster (pcn, link_worker_id, capacity, active, changed_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (pcn, link_worker_id) DO UPDATE SET"
            " capacity = excluded.capacity, active = excluded.active,"
            " changed_at = excluded.changed_at WHERE roster.changed_at <= excluded.changed_at",
            pcn,
            worker_id,
            capacity,
            active,
            at,
        )


class OutcomesStore:
    def __init__(self, conn: asyncpg.Connection):
        self.rejections = Rejections(conn)
        self.roster = Roster(conn)
        self.referrals = Referrals(conn)
        self.timeline = Timeline(conn)
        self.measurements = Measurements(conn)
        self.gp_record = GpRecord(conn)
        self.subjects = Subjects(conn)


class Subjects:
    """What outcomes holds about one person's referrals, for their rights (``rights``)."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def referrals(self, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT referral_id, registered_practice, nhs_number, pcn, needs, link_worker_id,"
            " close_reason, end_note FROM referral WHERE referral_id = ANY($1::uuid[])",
            ids,
        )
        return [dict(r) for r in rows]

    async def timeline(self, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT referral_id, event_type, occurred_at, detail FROM timeline"
            " WHERE referral_id = ANY($1::uuid[]) ORDER BY occurred_at",
            ids,
        )
        return [dict(r) for r in rows]

    async def measurements(self, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT referral_id, instrument, point, items, taken_at FROM measurement"
            " WHERE referral_id = ANY($1::uuid[]) ORDER BY taken_at",
            ids,
        )
        return [dict(r) for r in rows]

    async def writebacks(self, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT referral_id, fact, codes FROM writeback WHERE referral_id = ANY($1::uuid[])",
            ids,
        )
        return [dict(r) for r in rows]

    async def correct_nhs_number(
        self, ids: list[uuid.UUID], nhs_number: str
    ) -> list[tuple[uuid.UUID, str | None, str | None]]:
        """Set the corrected NHS number; each referral with its practice and the number
        it had before."""
        rows = await self.conn.fetch(
            "WITH old AS (SELECT referral_id, nhs_number FROM referral"
            " WHERE referral_id = ANY($1::uuid[]) FOR UPDATE)"
            " UPDATE referral r SET nhs_number = $2 FROM old WHERE r.referral_id = old.referral_id"
            " RETURNING r.referral_id, r.registered_practice, old.nhs_number AS before",
            ids,
            nhs_number,
        )
        return [(r["referral_id"], r["registered_practice"], r["before"]) for r in rows]
