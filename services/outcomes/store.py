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


@dataclass(frozen=True)
class Entry:
    """One event on a referral's timeline, as it is stored."""

    source: str
    event_id: str
    event_type: str
    occurred_at: datetime
    detail: dict[str, Any]


@dataclass(frozen=True)
class Standing:
    """Where an episode stands, as its next decisions need it: the episode (None until
    intake's announcement has arrived), whether its processing is restricted (Art. 18),
    what has been written to its GP record, and its referrals with their PCNs (its own
    first: those its referrers are told of)."""

    episode: Episode | None
    restricted: bool
    written: set[tuple[WritebackFact, str]]
    members: list[tuple[uuid.UUID, str]]


# What ``Known`` holds, from a referral's row.
_KNOWN = (
    "referral_id, coalesce(episode_referral_id, referral_id) AS episode_id, pcn, sender,"
    " accepted_at IS NOT NULL AS accepted, closed_at, held_at IS NOT NULL AS held,"
    " in_progress_at IS NOT NULL AS in_progress, accepted_at AS received_at"
)

# A referral's journey columns a step may set (a fixed set: never a sender's names).
_JOURNEY = {
    "waitlisted_at", "assigned_at", "link_worker_id", "episode_referral_id",
    "in_progress_at", "held_at",
}  # fmt: skip

# What follows the CTE that makes or changes a referral's row: the event on its timeline
# ($1 the referral, $2-$6 the entry).
_AND_TIMELINE = (
    " INSERT INTO timeline (referral_id, source, event_id, event_type, occurred_at, detail)"
    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, event_id) DO NOTHING"
)

# Where an episode stands ($1 the episode's referral, $2 the timeline's event types the
# GP record hears of): the referral's row, with the sharing choice of the whole episode
# (any of its referrals' codes only), its restriction, the writebacks made (fact, key),
# its members with their PCNs (``Referrals.members``' order), and one row more per
# timeline entry of those types (in time order) and per measurement (in time order).
_STANDING = """
SELECT r.registered_practice, r.nhs_number, r.agency_type, r.pcn, r.needs, r.accepted_at,
       r.closed_at, r.close_reason, r.withdrawn_by, r.end_note,
       (SELECT bool_or(gp_sharing = 'codes_only') FROM referral
         WHERE referral_id = $1 OR episode_referral_id = $1) AS codes_only,
       EXISTS (SELECT 1 FROM subject_restriction WHERE referral_id = $1) AS restricted,
       w.facts, w.keys, m.member_ids, m.member_pcns,
       x.event_id, x.event_type, x.occurred_at, x.detail, x.instrument, x.point, x.items
  FROM referral r
 CROSS JOIN LATERAL (SELECT array_agg(fact) AS facts, array_agg(key) AS keys
                       FROM writeback WHERE referral_id = $1) w
 CROSS JOIN LATERAL (SELECT array_agg(referral_id ORDER BY referral_id <> $1, accepted_at,
                                      referral_id) AS member_ids,
                            array_agg(pcn ORDER BY referral_id <> $1, accepted_at,
                                      referral_id) AS member_pcns
                       FROM referral
                      WHERE (referral_id = $1 OR (episode_referral_id = $1 AND closed_at IS NULL))
                        AND pcn IS NOT NULL) m
  LEFT JOIN LATERAL (SELECT 0 AS part, id, event_id, event_type, occurred_at, detail,
                            NULL AS instrument, NULL AS point, NULL::integer[] AS items
                       FROM timeline
                      WHERE referral_id = $1 AND event_type = ANY($2::text[])
                      UNION ALL
                     SELECT 1, NULL, event_id, NULL, taken_at, NULL, instrument, point, items
                       FROM measurement WHERE referral_id = $1) x ON true
 WHERE r.referral_id = $1
 ORDER BY x.part, x.occurred_at, x.id
"""


class Referrals:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def lock(self, referral_id: uuid.UUID) -> Known:
        """Every change to a referral happens under its row lock, so two outcomes
        processes never both miss (or both send) a writeback. Locks the referral's row,
        making it (empty) if the referral is not known yet, and returns what is known of
        it: one statement."""
        row = await self.conn.fetchrow(
            "INSERT INTO referral (referral_id) VALUES ($1) ON CONFLICT (referral_id)"
            f" DO UPDATE SET referral_id = excluded.referral_id RETURNING {_KNOWN}",
            referral_id,
        )
        return Known(**dict(row))

    async def accepted(
        self,
        referral_id: uuid.UUID,
        entry: Entry,
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
        take_held: bool = False,
    ) -> list[dict[str, Any]] | None:
        """Make the referral known as intake accepted it, its row made if no early event
        made it (either way locked, as ``lock`` does), and add the acceptance to its
        timeline: one statement. With ``take_held``, for a transaction that holds the
        referral's row lock already (``lock_many``, in an earlier statement, so that this
        one sees every hold committed before the lock was granted), the same statement
        takes the events held for it out of ``early_event`` and returns them, to be
        released (``early.release``)."""
        statement = (
            "WITH accepted AS (INSERT INTO referral (referral_id, registered_practice,"
            " nhs_number, agency_type, pcn, needs, accepted_at, sender, gp_sharing, person_id,"
            " pathway) VALUES ($1, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            " ON CONFLICT (referral_id) DO UPDATE SET"
            " registered_practice = excluded.registered_practice,"
            " nhs_number = excluded.nhs_number, agency_type = excluded.agency_type,"
            " pcn = excluded.pcn, needs = excluded.needs, accepted_at = excluded.accepted_at,"
            " sender = excluded.sender, gp_sharing = excluded.gp_sharing,"
            " person_id = excluded.person_id, pathway = excluded.pathway)"
        )
        values = (
            referral_id,
            *_entry(entry),
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
        if not take_held:
            await self.conn.execute(statement + _AND_TIMELINE, *values)
            return None
        rows = await self.conn.fetch(
            statement + ", entry AS (" + _AND_TIMELINE + "), held AS (DELETE FROM early_event"
            " WHERE referral_id = $1"
            " RETURNING source, event_id, event_type, sender, body, received_at)"
            " SELECT * FROM held",
            *values,
        )
        return [dict(r) for r in rows]

    async def lock_many(self, referral_ids: list[uuid.UUID]) -> None:
        """``lock`` for several referrals, in one statement, in id order (each row made if
        missing, else locked and left as it is)."""
        await self.conn.execute(
            "INSERT INTO referral (referral_id) SELECT r FROM unnest($1::uuid[]) AS r ORDER BY r"
            " ON CONFLICT (referral_id) DO UPDATE SET referral_id = excluded.referral_id"
            " WHERE false",
            sorted(set(referral_ids)),
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

    async def step(self, referral_id: uuid.UUID, entry: Entry, **columns: Any) -> None:
        """Set some of a referral's journey columns (a fixed set: never a sender's names),
        its row made if it has none yet (either way locked, as ``lock`` does), and add the
        event to its timeline: one statement."""
        assert columns and set(columns) <= _JOURNEY, set(columns) - _JOURNEY
        names = list(columns)
        values = ", ".join(f"${i + 7}" for i in range(len(names)))
        updates = ", ".join(f"{name} = excluded.{name}" for name in names)
        await self.conn.execute(
            f"WITH step AS (INSERT INTO referral (referral_id, {', '.join(names)})"
            f" VALUES ($1, {values}) ON CONFLICT (referral_id) DO UPDATE SET {updates})"
            + _AND_TIMELINE,
            referral_id,
            *_entry(entry),
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

    async def standing(self, episode_id: uuid.UUID) -> Standing | None:
        """Where the episode stands (``Standing``), or None if outcomes has no row for it:
        one statement."""
        rows = await self.conn.fetch(
            _STANDING, episode_id, [ContactRecorded.TYPE, PlanAgreed.TYPE, NoteShared.TYPE]
        )
        if not rows:
            return None
        row = rows[0]
        written = {
            (WritebackFact(fact), key)
            for fact, key in zip(row["facts"] or (), row["keys"] or (), strict=True)
        }
        members = list(zip(row["member_ids"] or (), row["member_pcns"] or (), strict=True))
        return Standing(_episode(episode_id, rows), row["restricted"], written, members)


def _entry(entry: Entry) -> tuple[Any, ...]:
    return entry.source, entry.event_id, entry.event_type, entry.occurred_at, entry.detail


def _episode(referral_id: uuid.UUID, rows: list[asyncpg.Record]) -> Episode | None:
    """The episode from ``_STANDING``'s rows; None until intake's announcement has arrived."""
    row = rows[0]
    if row["accepted_at"] is None:
        return None
    timeline = [t for t in rows if t["event_type"] is not None]
    return Episode(
        referral_id=str(referral_id),
        registered_practice=row["registered_practice"],
        nhs_number=row["nhs_number"],
        agency_type=AgencyType(row["agency_type"]),
        pcn=row["pcn"],
        needs=tuple(row["needs"]),
        accepted_at=row["accepted_at"],
        contacts=tuple(_contact(t) for t in timeline if t["event_type"] == ContactRecorded.TYPE),
        closure=_closure(row),
        gp_sharing=GpSharing.CODES_ONLY if row["codes_only"] else GpSharing.CODES_AND_SUMMARIES,
        plans=tuple(_plan(t) for t in timeline if t["event_type"] == PlanAgreed.TYPE),
        notes=tuple(_note(t) for t in timeline if t["event_type"] == NoteShared.TYPE),
        measurements=tuple(
            Measurement(
                Instrument(m["instrument"]),
                MeasurePoint(m["point"]),
                tuple(m["items"]),
                m["occurred_at"],
                key=m["event_id"],
            )
            for m in rows
            if m["instrument"] is not None
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

    async def add(self, referral_id: uuid.UUID, entry: Entry) -> None:
        await self.conn.execute(
            "INSERT INTO timeline (referral_id, source, event_id, event_type, occurred_at,"
            " detail) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, event_id) DO NOTHING",
            referral_id,
            *_entry(entry),
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
