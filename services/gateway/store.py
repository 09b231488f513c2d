"""The gateway's named queries: drafts (half-filled forms, server side, expiring) and
submissions (what was sent, once per form, and where each stands)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from . import domain


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def check_digest(reference: str, date_of_birth: str) -> bytes:
    """What the status check compares: the reference with the date of birth, digested (the
    date itself is not kept)."""
    return hashlib.sha256(
        f"{domain.normalise_reference(reference)}|{date_of_birth}".encode()
    ).digest()


@dataclass(frozen=True)
class Draft:
    form_key: str
    answers: dict[str, Any]
    reference: str | None


@dataclass(frozen=True)
class Standing:
    reference: str
    step: str
    step_at: datetime
    submitted_at: datetime
    referral_id: uuid.UUID | None = None
    withdrawn_at: datetime | None = None
    organisation: str = ""


class Drafts:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def create(self, token: str, form_key: str, minutes: int) -> None:
        """A new draft; drafts past their expiry are deleted on the way (a few at a time)."""
        await self.conn.execute(
            "WITH gone AS (DELETE FROM draft WHERE token_digest IN (SELECT token_digest FROM"
            " draft WHERE expires_at < now() LIMIT 100)) INSERT INTO draft (token_digest,"
            " form_key, expires_at) VALUES ($1, $2, now() + make_interval(mins => $3))",
            digest(token),
            form_key,
            minutes,
        )

    async def get(self, token: str, *, lock: bool = False) -> Draft | None:
        row = await self.conn.fetchrow(
            "SELECT form_key, answers, reference FROM draft WHERE token_digest = $1"
            " AND expires_at > now()" + (" FOR UPDATE" if lock else ""),
            digest(token),
        )
        return Draft(row["form_key"], row["answers"], row["reference"]) if row else None

    async def answer(self, token: str, answers: dict[str, Any], minutes: int) -> None:
        """Add answers (replacing a question's earlier ones) and keep the draft longer."""
        await self.conn.execute(
            "UPDATE draft SET answers = answers || $2::jsonb,"
            " expires_at = now() + make_interval(mins => $3)"
            " WHERE token_digest = $1 AND reference IS NULL",
            digest(token),
            answers,
            minutes,
        )

    async def forget(self, token: str) -> None:
        await self.conn.execute("DELETE FROM draft WHERE token_digest = $1", digest(token))

    async def sent(self, token: str, reference: str) -> None:
        """The answers are gone once sent (but who was referred, myself or someone I care
        for, to word the confirmation); the reference stays, for the confirmation."""
        await self.conn.execute(
            "UPDATE draft SET answers = jsonb_strip_nulls(jsonb_build_object('who',"
            " answers->'who')), reference = $2 WHERE token_digest = $1",
            digest(token),
            reference,
        )


class Submissions:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def add(
        self, reference: str, form_key: str, event_id: str, organisation: str, check: bytes
    ) -> bool:
        """False if this form was sent before (nothing is added)."""
        added = await self.conn.fetchval(
            "INSERT INTO submission (reference, form_key, event_id, organisation, check_digest)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (form_key) DO NOTHING RETURNING 1",
            reference,
            form_key,
            event_id,
            organisation,
            check,
        )
        return added is not None

    async def reference_of(self, form_key: str) -> str | None:
        return await self.conn.fetchval(
            "SELECT reference FROM submission WHERE form_key = $1", form_key
        )

    async def standing(
        self, reference: str, check: bytes, *, lock: bool = False
    ) -> Standing | None:
        row = await self.conn.fetchrow(
            "SELECT reference, step, step_at, submitted_at, referral_id, withdrawn_at,"
            " organisation FROM submission WHERE reference = $1 AND check_digest = $2"
            + (" FOR UPDATE" if lock else ""),
            reference,
            check,
        )
        return Standing(**dict(row)) if row else None

    async def withdrawn(self, reference: str, event_id: str) -> None:
        await self.conn.execute(
            "UPDATE submission SET withdrawal_event_id = $2, withdrawn_at = now()"
            " WHERE reference = $1",
            reference,
            event_id,
        )

    async def answered(
        self,
        *,
        event_id: str | None,
        referral_id: uuid.UUID | None,
        step: str | None,
        at: datetime,
    ) -> bool:
        """An answer about one of ours: the referral's id is noted, and its step moves on
        if the answer is not older than the step shown. False if it is not ours."""
        row = await self.conn.fetchval(
            "UPDATE submission SET referral_id = coalesce(referral_id, $2),"
            " step = CASE WHEN $3::text IS NOT NULL AND $4 >= step_at THEN $3 ELSE step END,"
            " step_at = CASE WHEN $3::text IS NOT NULL AND $4 >= step_at THEN $4 ELSE step_at END"
            " WHERE ($1::text IS NOT NULL AND event_id = $1)"
            " OR ($1::text IS NULL AND referral_id = $2) RETURNING 1",
            event_id,
            referral_id,
            step,
            at,
        )
        return row is not None


class GatewayStore:
    def __init__(self, conn: asyncpg.Connection):
        self.drafts = Drafts(conn)
        self.submissions = Submissions(conn)
