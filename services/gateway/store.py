"""The gateway's named queries: drafts (half-filled forms, server side, expiring) and
submissions (what was sent, once per form, and where each stands)."""

from __future__ import annotations

import hashlib
import secrets
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

    async def create_for(self, token: str, form_key: str, minutes: int, account: uuid.UUID) -> None:
        """A professional's draft: only their session finds it again."""
        await self.create(token, form_key, minutes)
        await self.conn.execute(
            "UPDATE draft SET account_id = $2 WHERE token_digest = $1", digest(token), account
        )

    async def owned(self, token: str, account: uuid.UUID, *, lock: bool = False) -> Draft | None:
        row = await self.conn.fetchrow(
            "SELECT form_key, answers, reference FROM draft WHERE token_digest = $1"
            " AND account_id = $2 AND expires_at > now()" + (" FOR UPDATE" if lock else ""),
            digest(token),
            account,
        )
        return Draft(row["form_key"], row["answers"], row["reference"]) if row else None

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
        self,
        reference: str,
        form_key: str,
        event_id: str,
        organisation: str,
        check: bytes,
        account: uuid.UUID | None = None,
    ) -> bool:
        """False if this form was sent before (nothing is added)."""
        added = await self.conn.fetchval(
            "INSERT INTO submission (reference, form_key, event_id, organisation, check_digest,"
            " account_id) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
            " RETURNING 1",  # any unique key: racing copies may meet on event_id first
            reference,
            form_key,
            event_id,
            organisation,
            check,
            account,
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
        task_status: str | None = None,
        answer: str | None = None,
        reasons: list[dict[str, Any]] | None = None,
    ) -> bool:
        """An answer about one of ours: the referral's id is noted, and its step (and its
        Gravity task status) move on if the answer is not older than the one shown; the
        first answer (accepted, rejected, duplicate) and a rejection's reasons are kept.
        False if it is not ours."""
        row = await self.conn.fetchval(
            "UPDATE submission SET referral_id = coalesce(referral_id, $2),"
            " answer = coalesce(answer, $6::text), reasons = coalesce(reasons, $7::jsonb),"
            " step = CASE WHEN $3::text IS NOT NULL AND $4 >= step_at THEN $3 ELSE step END,"
            " step_at = CASE WHEN $3::text IS NOT NULL AND $4 >= step_at THEN $4 ELSE step_at END,"
            " task_status = CASE WHEN $5::text IS NOT NULL AND $4 >= task_status_at THEN $5"
            " ELSE task_status END,"
            " task_status_at = CASE WHEN $5::text IS NOT NULL AND $4 >= task_status_at THEN $4"
            " ELSE task_status_at END,"
            # the referral ended: the clock of this row's retention starts (retention.py)
            " ended_at = CASE WHEN $3::text IN ('rejected', 'closed', 'withdrawn')"
            " THEN coalesce(ended_at, $4) ELSE ended_at END"
            " WHERE ($1::text IS NOT NULL AND event_id = $1)"
            " OR ($1::text IS NULL AND referral_id = $2) RETURNING 1",
            event_id,
            referral_id,
            step,
            at,
            task_status,
            answer,
            reasons,
        )
        return row is not None

    async def add_api(
        self,
        *,
        reference: str,
        form_key: str,
        event_id: str,
        organisation: str,
        client: uuid.UUID | None,
        request: bytes,
    ) -> bool:
        """A referral sent over the API; False if its form key (organisation and
        Idempotency-Key) was used before (nothing is added)."""
        added = await self.conn.fetchval(
            "INSERT INTO submission (reference, form_key, event_id, organisation, check_digest,"
            " api_client_id, request_digest) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            # no conflict target: the event id derives from the form key, and two racing
            # copies of one request may meet on event_id's unique index before form_key's,
            # which with a target would be a unique violation rather than nothing done
            " ON CONFLICT DO NOTHING RETURNING 1",
            reference,
            form_key,
            event_id,
            organisation,
            secrets.token_bytes(32),  # no status check by reference and date of birth
            client,
            request,
        )
        return added is not None

    async def api_request(self, form_key: str) -> tuple[str, bytes | None] | None:
        """The event id and request digest a form key was used with, if it was."""
        row = await self.conn.fetchrow(
            "SELECT event_id, request_digest FROM submission WHERE form_key = $1", form_key
        )
        return (row["event_id"], row["request_digest"]) if row else None

    async def by_event(self, event_id: str, organisation: str) -> ApiStanding | None:
        """One of this organisation's submissions by its event id (never another's)."""
        row = await self.conn.fetchrow(
            "SELECT event_id, step, step_at, submitted_at, referral_id, withdrawn_at,"
            " task_status, answer, reasons FROM submission"
            " WHERE event_id = $1 AND organisation = $2",
            event_id,
            organisation,
        )
        return ApiStanding(**dict(row)) if row else None

    async def standing_in(
        self, reference: str, organisation: str, *, lock: bool = False
    ) -> Standing | None:
        """One of this organisation's referrals (never another's)."""
        row = await self.conn.fetchrow(
            "SELECT reference, step, step_at, submitted_at, referral_id, withdrawn_at,"
            " organisation FROM submission WHERE reference = $1 AND organisation = $2"
            + (" FOR UPDATE" if lock else ""),
            reference,
            organisation,
        )
        return Standing(**dict(row)) if row else None

    async def of_organisation(self, organisation: str, limit: int = 200) -> list[Listed]:
        """This organisation's referrals made on the professional pages, newest first."""
        rows = await self.conn.fetch(
            "SELECT s.reference, s.step, s.step_at, s.submitted_at, s.referral_id,"
            " s.withdrawn_at, s.organisation, s.task_status, a.email AS sent_by"
            " FROM submission s JOIN account a ON a.id = s.account_id"
            " WHERE s.organisation = $1 ORDER BY s.submitted_at DESC LIMIT $2",
            organisation,
            limit,
        )
        return [
            Listed(
                Standing(**{k: r[k] for k in Standing.__dataclass_fields__}),
                r["task_status"],
                r["sent_by"],
            )
            for r in rows
        ]


@dataclass(frozen=True)
class ApiStanding:
    event_id: str
    step: str
    step_at: datetime
    submitted_at: datetime
    referral_id: uuid.UUID | None
    withdrawn_at: datetime | None
    task_status: str | None
    answer: str | None
    reasons: list[dict[str, Any]] | None


@dataclass(frozen=True)
class Listed:
    standing: Standing
    task_status: str | None
    sent_by: str


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    organisation: str
    email: str
    role: str | None
    password_hash: str | None
    organisation_name: str
    agency_type: str
    disabled_at: datetime | None = None


_ACCOUNT = (
    "SELECT a.id, a.organisation, a.email, a.role, a.password_hash, a.disabled_at,"
    " o.name AS organisation_name, o.agency_type"
)
_FROM_ACCOUNT = " FROM account a JOIN organisation o ON o.code = a.organisation"


@dataclass(frozen=True)
class Invitation:
    account: Account
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True)
class Session:
    account: Account
    created_at: datetime
    seen_at: datetime
    ended_at: datetime | None


class Accounts:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def organisation(self, code: str, name: str | None, agency_type: str | None) -> bool:
        """Record (or update) an organisation's name and kind; False if it is unknown and
        neither was given."""
        if name and agency_type:
            await self.conn.execute(
                "INSERT INTO organisation (code, name, agency_type) VALUES ($1, $2, $3)"
                " ON CONFLICT (code) DO UPDATE SET name = $2, agency_type = $3",
                code,
                name,
                agency_type,
            )
            return True
        return bool(await self.conn.fetchval("SELECT 1 FROM organisation WHERE code = $1", code))

    async def invite(
        self, organisation: str, email: str, role: str | None, token: bytes, hours: int
    ) -> uuid.UUID:
        """The account (made now, or already there: a new invitation resets its password)
        and a new one-time invitation for it."""
        account = await self.conn.fetchval(
            "INSERT INTO account (id, organisation, email, role) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (email) DO UPDATE SET role = coalesce($4, account.role),"
            " password_hash = NULL WHERE account.organisation = $2 RETURNING id",
            uuid.uuid4(),
            organisation,
            email,
            role,
        )
        if account is None:
            raise ValueError("that email has an account at another organisation")
        await self.conn.execute(
            "UPDATE session SET ended_at = now() WHERE account_id = $1 AND ended_at IS NULL",
            account,
        )
        await self.conn.execute(
            "INSERT INTO invitation (token_digest, account_id, expires_at)"
            " VALUES ($1, $2, now() + make_interval(hours => $3))",
            token,
            account,
            hours,
        )
        return account

    async def invitation(self, token: bytes, *, lock: bool = False) -> Invitation | None:
        """The invitation with this token's digest, and whom it is for (used or not)."""
        row = await self.conn.fetchrow(
            _ACCOUNT + ", i.expires_at AS i_expires, i.used_at AS i_used"
            " FROM invitation i JOIN account a ON a.id = i.account_id"
            " JOIN organisation o ON o.code = a.organisation WHERE i.token_digest = $1"
            + (" FOR UPDATE OF i" if lock else ""),
            token,
        )
        if row is None:
            return None
        values = dict(row)
        expires_at, used_at = values.pop("i_expires"), values.pop("i_used")
        return Invitation(Account(**values), expires_at, used_at)

    async def accept(self, token: bytes, account: uuid.UUID, password_hash: str) -> None:
        await self.conn.execute(
            "UPDATE invitation SET used_at = now() WHERE token_digest = $1", token
        )
        await self.conn.execute(
            "UPDATE account SET password_hash = $2 WHERE id = $1", account, password_hash
        )

    async def by_email(self, email: str) -> Account | None:
        row = await self.conn.fetchrow(_ACCOUNT + _FROM_ACCOUNT + " WHERE a.email = $1", email)
        return Account(**dict(row)) if row else None

    async def rehash(self, account: uuid.UUID, password_hash: str) -> None:
        await self.conn.execute(
            "UPDATE account SET password_hash = $2 WHERE id = $1", account, password_hash
        )

    async def signed_in(self, account: uuid.UUID, token: bytes) -> None:
        """A new session, and the sign-in recorded (by account id only)."""
        await self.conn.execute(
            "INSERT INTO session (token_digest, account_id) VALUES ($1, $2)", token, account
        )
        await self.conn.execute("INSERT INTO sign_in (account_id) VALUES ($1)", account)

    async def session(self, token: bytes) -> Session | None:
        row = await self.conn.fetchrow(
            "SELECT a.id, a.organisation, a.email, a.role, a.password_hash, a.disabled_at,"
            " o.name AS organisation_name, o.agency_type, s.created_at AS s_created,"
            " s.seen_at AS s_seen, s.ended_at AS s_ended FROM session s"
            " JOIN account a ON a.id = s.account_id JOIN organisation o ON o.code = a.organisation"
            " WHERE s.token_digest = $1",
            token,
        )
        if row is None:
            return None
        values = dict(row)
        times = values.pop("s_created"), values.pop("s_seen"), values.pop("s_ended")
        return Session(Account(**values), *times)

    async def seen(self, token: bytes) -> None:
        await self.conn.execute("UPDATE session SET seen_at = now() WHERE token_digest = $1", token)

    async def end(self, token: bytes) -> None:
        await self.conn.execute(
            "UPDATE session SET ended_at = coalesce(ended_at, now()) WHERE token_digest = $1",
            token,
        )


@dataclass(frozen=True)
class ApiClientRow:
    id: uuid.UUID
    organisation: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    organisation_name: str
    agency_type: str
    endpoint_url: str | None = None  # where its system takes pushed messages (0006)


_API_CLIENT = (
    "SELECT c.id, c.organisation, c.name, c.created_at, c.expires_at, c.revoked_at,"
    " o.name AS organisation_name, o.agency_type, c.endpoint_url FROM api_client c"
    " JOIN organisation o ON o.code = c.organisation"
)


class ApiClients:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def add(
        self, organisation: str, name: str, secret: bytes, expires_at: datetime | None
    ) -> uuid.UUID:
        return await self.conn.fetchval(
            "INSERT INTO api_client (id, organisation, name, secret_digest, expires_at)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            uuid.uuid4(),
            organisation,
            name,
            secret,
            expires_at,
        )

    async def by_digest(self, secret: bytes) -> ApiClientRow | None:
        row = await self.conn.fetchrow(_API_CLIENT + " WHERE c.secret_digest = $1", secret)
        return ApiClientRow(**dict(row)) if row else None

    async def listed(self, organisation: str | None = None) -> list[ApiClientRow]:
        rows = await self.conn.fetch(
            _API_CLIENT + " WHERE $1::text IS NULL OR c.organisation = $1"
            " ORDER BY c.organisation, c.created_at",
            organisation,
        )
        return [ApiClientRow(**dict(r)) for r in rows]

    async def set_endpoint(self, client_id: uuid.UUID, url: str | None) -> str | None:
        """Register (or, with None, remove) where a client's system takes pushed messages.
        Returns the client's organisation, or None if there is no such client."""
        return await self.conn.fetchval(
            "UPDATE api_client SET endpoint_url = $2 WHERE id = $1 RETURNING organisation",
            client_id,
            url,
        )

    async def revoke(self, client_id: uuid.UUID) -> str | None:
        """The client's organisation, or None if there is no such client (revoking twice
        keeps the first time)."""
        return await self.conn.fetchval(
            "UPDATE api_client SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1"
            " RETURNING organisation",
            client_id,
        )

    async def organisation(self, code: str) -> tuple[str, str] | None:
        """An organisation's name and agency type, if the gateway knows it."""
        row = await self.conn.fetchrow(
            "SELECT name, agency_type FROM organisation WHERE code = $1", code
        )
        return (row["name"], row["agency_type"]) if row else None


class GatewayStore:
    def __init__(self, conn: asyncpg.Connection):
        self.api_clients = ApiClients(conn)
        self.drafts = Drafts(conn)
        self.submissions = Submissions(conn)
        self.accounts = Accounts(conn)
        from .fhir.store import FhirReferrals  # (it names this module's Standing)

        self.fhir = FhirReferrals(conn)
