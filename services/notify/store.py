"""notify's named queries: what it knows of each referral (who sent it, how to reach the
person, where it stands for its referrer) and the messages waiting to be sent."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from contracts.enums import ReferralStatusValue, TaskStatus
from contracts.events import PersonContact

from .domain import Known, Medium, Message


@dataclass(frozen=True)
class Standing:
    """Where a referral stands for its referrer."""

    known: Known
    submission_event_id: str | None
    step: ReferralStatusValue
    task_status: TaskStatus
    status_at: datetime | None
    placed_at: datetime | None
    contact_allowed: bool


@dataclass(frozen=True)
class Queued:
    """What became of the messages of a step: withheld (the referral is restricted), or
    how many were queued (not those queued before)."""

    restricted: bool
    queued: int


@dataclass(frozen=True)
class Pending:
    id: int
    key: str
    referral_id: uuid.UUID
    pcn: str
    audience: str
    medium: Medium
    address: str
    subject: str
    body: str
    attempts: int


def _standing(row: asyncpg.Record) -> Standing:
    known = Known(
        str(row["referral_id"]),
        row["sender"],
        row["sender_reference"],
        row["pcn"],
        PersonContact.model_validate(row["contact"]),
    )
    return Standing(
        known,
        row["submission_event_id"],
        ReferralStatusValue(row["step"]),
        TaskStatus(row["task_status"]),
        row["status_at"],
        row["placed_at"],
        row["contact_allowed"],
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
        pcn: str,
        contact: dict[str, Any],
        submission_event_id: str,
        at: datetime,
        lock: str | None,
    ) -> tuple[bool, list[dict[str, Any]] | None]:
        """One statement: the referral added; False if it was known already.

        With ``lock`` (``early.lock_key``, the lock ``uow.serialise`` takes), the referral id
        is locked first, until the transaction ends, and the events held for it are
        released by a later statement, which sees every hold committed before the lock was
        granted (None is returned for them). Without, the transaction holds that lock
        already (``early.serialise_many``, in an earlier statement, so this one sees every
        such hold): the events held for it, if it was added, are taken out of
        ``early_event`` by this statement and returned, to be released (``early.release``).
        """
        values = (referral_id, sender, reference, pcn, contact, submission_event_id, at)
        if lock is not None:
            added = await self.conn.fetchval(
                "WITH serialised AS (SELECT pg_advisory_xact_lock(hashtextextended($8, 0)))"
                " INSERT INTO referral (referral_id, sender, sender_reference, pcn, contact,"
                " submission_event_id, status_at) SELECT $1, $2, $3, $4, $5, $6, $7"
                " FROM serialised ON CONFLICT DO NOTHING RETURNING 1",
                *values,
                lock,
            )
            return added is not None, None
        rows = await self.conn.fetch(
            "WITH added AS (INSERT INTO referral (referral_id, sender, sender_reference, pcn,"
            " contact, submission_event_id, status_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT DO NOTHING RETURNING 1),"
            " held AS (DELETE FROM early_event WHERE referral_id = $1"
            " AND EXISTS (SELECT 1 FROM added)"
            " RETURNING source, event_id, event_type, sender, body, received_at)"
            " SELECT EXISTS (SELECT 1 FROM added) AS added, h.* FROM (SELECT 1) AS one"
            " LEFT JOIN held AS h ON true",
            *values,
        )
        return rows[0]["added"], [dict(r) for r in rows if r["event_id"] is not None]

    async def standings(self, referral_ids: list[uuid.UUID]) -> dict[uuid.UUID, Standing]:
        """One statement: the referrals notify knows of these, each locked (in id order),
        as ``standing`` reads one."""
        rows = await self.conn.fetch(
            "SELECT * FROM referral WHERE referral_id = ANY($1::uuid[])"
            " ORDER BY referral_id FOR UPDATE",
            referral_ids,
        )
        return {row["referral_id"]: _standing(row) for row in rows}

    async def standing(self, referral_id: uuid.UUID) -> Standing | None:
        """The referral, locked; None if notify has not heard of it yet."""
        row = await self.conn.fetchrow(
            "SELECT * FROM referral WHERE referral_id = $1 FOR UPDATE", referral_id
        )
        return None if row is None else _standing(row)

    async def stand(
        self,
        referral_id: uuid.UUID,
        step: ReferralStatusValue,
        task: TaskStatus,
        at: datetime,
        *,
        placed: bool = False,
    ) -> None:
        await self.conn.execute(
            "UPDATE referral SET step = $2, task_status = $3, status_at = $4,"
            " placed_at = CASE WHEN $5 THEN $4 ELSE placed_at END WHERE referral_id = $1",
            referral_id,
            step.value,
            task.value,
            at,
            placed,
        )

    async def stand_and_queue(
        self,
        referral_id: uuid.UUID,
        step: ReferralStatusValue,
        task: TaskStatus,
        at: datetime,
        messages: Sequence[tuple[str, Message]],
        *,
        placed: bool,
        wake: str,
    ) -> Queued:
        """One statement: the referral moves to ``step`` (as ``stand``) and ``messages``
        (key, message) are queued for the dispatcher in this order, each once (a key queued
        before is skipped), none while the referral is restricted (Art. 18: stored, not
        processed); if any was queued, ``wake`` is NOTIFYed (delivered at commit, once per
        transaction however often it is signalled)."""
        row = await self.conn.fetchrow(
            "WITH stood AS (UPDATE referral SET step = $2, task_status = $3, status_at = $4,"
            " placed_at = CASE WHEN $5 THEN $4 ELSE placed_at END WHERE referral_id = $1),"
            " held AS (SELECT EXISTS (SELECT 1 FROM subject_restriction"
            " WHERE referral_id = $1) AS restricted),"
            " queued AS (INSERT INTO notification (key, referral_id, audience, medium, address,"
            " subject, body) SELECT k, $1, a, m, d, s, b FROM unnest($6::text[], $7::text[],"
            " $8::text[], $9::text[], $10::text[], $11::text[]) WITH ORDINALITY"
            " AS u(k, a, m, d, s, b, n) WHERE NOT (SELECT restricted FROM held) ORDER BY n"
            " ON CONFLICT (key) DO NOTHING RETURNING 1)"
            " SELECT restricted, (SELECT count(*) FROM queued) AS queued,"
            " CASE WHEN EXISTS (SELECT 1 FROM queued) THEN pg_notify($12, '') END AS woken"
            " FROM held",
            referral_id,
            step.value,
            task.value,
            at,
            placed,
            [key for key, _ in messages],
            [m.audience.value for _, m in messages],
            [m.medium.value for _, m in messages],
            [m.address for _, m in messages],
            [m.subject for _, m in messages],
            [m.body for _, m in messages],
            wake,
        )
        return Queued(row["restricted"], row["queued"])

    async def ended(self, referral_id: uuid.UUID, at: datetime) -> None:
        """The referral ended (closed or withdrawn): the clock of the retention of the
        person's contact details starts (the first end told stands)."""
        await self.conn.execute(
            "UPDATE referral SET ended_at = coalesce(ended_at, $2) WHERE referral_id = $1",
            referral_id,
            at,
        )

    async def stop_contact(self, referral_id: uuid.UUID) -> int:
        """The person is not contacted again: unsent messages to them are cancelled."""
        await self.conn.execute(
            "UPDATE referral SET contact_allowed = false WHERE referral_id = $1", referral_id
        )
        result = await self.conn.execute(
            "UPDATE notification SET cancelled_at = now() WHERE referral_id = $1"
            " AND audience = 'person' AND sent_at IS NULL AND failed_at IS NULL"
            " AND cancelled_at IS NULL",
            referral_id,
        )
        return int(result.split()[-1])


class Outgoing:
    """Messages to people and teams, sent by the dispatcher after the deciding commit."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def next_due(self, limit: int, media: tuple[Medium, ...]) -> list[Pending]:
        """The oldest messages of these media that are due, locked (skipping those another
        dispatcher holds)."""
        rows = await self.conn.fetch(
            "SELECT n.id, n.key, n.referral_id, r.pcn, n.audience, n.medium, n.address,"
            " n.subject, n.body, n.attempts FROM notification n"
            " JOIN referral r USING (referral_id)"
            " WHERE n.sent_at IS NULL AND n.failed_at IS NULL AND n.cancelled_at IS NULL"
            " AND n.next_attempt_at <= now() AND n.medium = ANY($2::text[])"
            " ORDER BY n.id LIMIT $1 FOR UPDATE OF n SKIP LOCKED",
            limit,
            [m.value for m in media],
        )
        return [
            Pending(
                row["id"],
                row["key"],
                row["referral_id"],
                row["pcn"],
                row["audience"],
                Medium(row["medium"]),
                row["address"],
                row["subject"],
                row["body"],
                row["attempts"],
            )
            for row in rows
        ]

    async def sent(self, ids: list[int]) -> None:
        if ids:
            await self.conn.execute(
                "UPDATE notification SET sent_at = now(), attempts = attempts + 1"
                " WHERE id = ANY($1::bigint[])",
                ids,
            )

    async def given_up(self, id: int, error: str) -> None:
        await self.conn.execute(
            "UPDATE notification SET attempts = attempts + 1, last_error = $2,"
            " failed_at = now() WHERE id = $1",
            id,
            error,
        )

    async def failed(self, id: int, error: str, retry_in: float, *, outage: bool) -> None:
        """An attempt that failed; with ``outage``, held by its channel's outage."""
        await self.conn.execute(
            "UPDATE notification SET attempts = attempts + 1, last_error = $2,"
            " next_attempt_at = now() + make_interval(secs => $3), held_by_outage = $4"
            " WHERE id = $1",
            id,
            error,
            retry_in,
            outage,
        )

    async def release(self, media: tuple[Medium, ...]) -> int:
        """The channel of these media is back: what its outage held is due now."""
        result = await self.conn.execute(
            "UPDATE notification SET next_attempt_at = least(next_attempt_at, now()),"
            " held_by_outage = false WHERE id IN (SELECT id FROM notification"
            " WHERE held_by_outage AND medium = ANY($1::text[]) AND sent_at IS NULL"
            " AND failed_at IS NULL AND cancelled_at IS NULL FOR UPDATE SKIP LOCKED)",
            [m.value for m in media],
        )
        return int(result.split()[-1])


class NotifyStore:
    def __init__(self, conn: asyncpg.Connection):
        self.referrals = Referrals(conn)
        self.outgoing = Outgoing(conn)
        self.subjects = Subjects(conn)


class Subjects:
    """What notify holds about one person's referrals, for their rights (``rights``)."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def referrals(self, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT referral_id, sender, pcn, contact, step FROM referral"
            " WHERE referral_id = ANY($1::uuid[])",
            ids,
        )
        return [dict(r) for r in rows]

    async def messages(self, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT referral_id, audience, medium, address, subject, body, created_at, sent_at"
            " FROM notification WHERE referral_id = ANY($1::uuid[]) ORDER BY created_at",
            ids,
        )
        return [dict(r) for r in rows]

    async def hold_unsent(self, ids: list[uuid.UUID]) -> int:
        """Messages not sent yet are not sent (a restriction, an erasure)."""
        result = await self.conn.execute(
            "UPDATE notification SET cancelled_at = now() WHERE referral_id = ANY($1::uuid[])"
            " AND sent_at IS NULL AND failed_at IS NULL AND cancelled_at IS NULL",
            ids,
        )
        return int(result.split()[-1])

    async def erase(self, ids: list[uuid.UUID]) -> tuple[int, int]:
        """Every message about these referrals deleted, and the person's contact details
        (all but the preferred way, which says nothing about them) removed."""
        messages = await self.conn.execute(
            "DELETE FROM notification WHERE referral_id = ANY($1::uuid[])", ids
        )
        contacts = await self.conn.execute(
            "UPDATE referral SET contact = jsonb_build_object('preferred', contact -> 'preferred'),"
            " contact_allowed = false WHERE referral_id = ANY($1::uuid[])",
            ids,
        )
        return int(messages.split()[-1]), int(contacts.split()[-1])
