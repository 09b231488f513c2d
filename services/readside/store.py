"""Reading the reporting model: the rows the figures read, from a reporting schema
(``<ns>_reporting``, which outcomes projects in its own transactions; or ``<ns>_synthetic``,
which only ``linkwell synthetic`` fills), and a pool whose sessions cannot write.

The read side never writes the projected facts (only ``fill_synthetic`` below writes, and
only to a synthetic schema). The dashboard's pool's sessions are read-only
(``default_transaction_read_only``), so a bug here fails loudly instead of changing the
figures; a PostgreSQL role granted only SELECT would enforce the same against a hostile
caller too, and deploy/README.md says how to give the dashboard one."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from services.runtime.db import init_connection

from .model import ReferralRow, RejectionRow, RosterRow

REFERRAL_COLUMNS = (
    "referral_id, person_id, sender, agency_type, registered_practice, pcn, needs, pathway,"
    " received_at, waitlisted_at, assigned_at, first_contact_at, declined_at, withdrawn_at,"
    " closed_at, close_reason, contacts, coded_at, link_worker_id, joined, swemwbs_baseline,"
    " swemwbs_end, ons4_baseline, ons4_end, awaiting_nhs_number"
)


async def read_only_pool(dsn: str, schema: str, size: int = 4) -> asyncpg.Pool:
    """A pool for the read side: search path the model's schema, every transaction
    read-only."""
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        init=init_connection,
        server_settings={
            "search_path": schema,
            "application_name": "linkwell-dashboard",
            "default_transaction_read_only": "on",
        },
    )


async def load(
    conn: asyncpg.Connection, schema: str, pcn: str | None = None
) -> tuple[list[ReferralRow], list[RejectionRow], list[RosterRow]]:
    """Every row of the model (one PCN's, when ``pcn`` is given)."""
    where, args = ("WHERE pcn = $1", [pcn]) if pcn else ("", [])
    s = f'"{schema}"'
    referrals = [
        ReferralRow(
            referral_id=str(r["referral_id"]),
            person_id=str(r["person_id"]) if r["person_id"] else None,
            sender=r["sender"],
            agency_type=r["agency_type"],
            registered_practice=r["registered_practice"],
            pcn=r["pcn"],
            needs=tuple(r["needs"]),
            pathway=r["pathway"],
            received_at=r["received_at"],
            waitlisted_at=r["waitlisted_at"],
            assigned_at=r["assigned_at"],
            first_contact_at=r["first_contact_at"],
            declined_at=r["declined_at"],
            withdrawn_at=r["withdrawn_at"],
            closed_at=r["closed_at"],
            close_reason=r["close_reason"],
            contacts=r["contacts"],
            coded_at=r["coded_at"],
            link_worker_id=r["link_worker_id"],
            joined=r["joined"],
            swemwbs_baseline=_float(r["swemwbs_baseline"]),
            swemwbs_end=_float(r["swemwbs_end"]),
            ons4_baseline=tuple(r["ons4_baseline"]) if r["ons4_baseline"] else None,  # type: ignore[arg-type]
            ons4_end=tuple(r["ons4_end"]) if r["ons4_end"] else None,  # type: ignore[arg-type]
            awaiting_nhs_number=r["awaiting_nhs_number"],
        )
        for r in await conn.fetch(
            f"SELECT {REFERRAL_COLUMNS} FROM {s}.referral_fact {where} ORDER BY received_at",
            *args,
        )
    ]
    rejections = [
        RejectionRow(
            submission_id=r["submission_id"],
            sender=r["sender"],
            agency_type=r["agency_type"],
            registered_practice=r["registered_practice"],
            pcn=r["pcn"],
            reasons=tuple(r["reasons"]),
            rejected_at=r["rejected_at"],
        )
        for r in await conn.fetch(
            f"SELECT * FROM {s}.rejection_fact {where} ORDER BY rejected_at", *args
        )
    ]
    caseload = {
        (r["pcn"], r["link_worker_id"]): r["n"]
        for r in await conn.fetch(
            f"SELECT pcn, link_worker_id, count(*) AS n FROM {s}.referral_fact"
            " WHERE assigned_at IS NOT NULL AND NOT joined AND closed_at IS NULL"
            " AND withdrawn_at IS NULL AND link_worker_id IS NOT NULL"
            " GROUP BY pcn, link_worker_id"
        )
    }
    roster = [
        RosterRow(
            r["pcn"],
            r["link_worker_id"],
            r["capacity"],
            r["active"],
            caseload.get((r["pcn"], r["link_worker_id"]), 0),
        )
        for r in await conn.fetch(
            f"SELECT * FROM {s}.roster_fact {where} ORDER BY pcn, link_worker_id", *args
        )
    ]
    return referrals, rejections, roster


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# ------------------------------------------------------------------ the synthetic model


async def fill_synthetic(conn: asyncpg.Connection, schema: str, year: Any) -> None:
    """Replace the synthetic model's rows with ``year`` (a ``synthetic.Year``), in one
    transaction. The one write of the read side, and only to a ``*_synthetic`` schema,
    never to the reporting model outcomes keeps."""
    if not schema.endswith("_synthetic"):
        raise ValueError(f"synthetic rows go only to a *_synthetic schema, not {schema}")
    s = f'"{schema}"'
    columns = [c.strip() for c in REFERRAL_COLUMNS.split(",")]
    async with conn.transaction():
        await conn.execute(f"TRUNCATE {s}.referral_fact, {s}.rejection_fact, {s}.roster_fact")
        await conn.copy_records_to_table(
            "referral_fact",
            schema_name=schema,
            columns=columns,
            records=[tuple(_value(c, getattr(r, c)) for c in columns) for r in year.referrals],
        )
        await conn.copy_records_to_table(
            "rejection_fact",
            schema_name=schema,
            columns=[
                "submission_id",
                "sender",
                "agency_type",
                "registered_practice",
                "pcn",
                "reasons",
                "rejected_at",
            ],
            records=[
                (
                    r.submission_id,
                    r.sender,
                    r.agency_type,
                    r.registered_practice,
                    r.pcn,
                    list(r.reasons),
                    r.rejected_at,
                )
                for r in year.rejections
            ],
        )
        await conn.copy_records_to_table(
            "roster_fact",
            schema_name=schema,
            columns=["pcn", "link_worker_id", "capacity", "active"],
            records=[(w.pcn, w.link_worker_id, w.capacity, w.active) for w in year.roster],
        )


def _value(column: str, value: Any) -> Any:
    if column in ("referral_id", "person_id") and value is not None:
        return uuid.UUID(value)
    return list(value) if isinstance(value, tuple) else value


# ------------------------------------------------------------------ published snapshots


async def snapshot_periods(conn: asyncpg.Connection, schema: str) -> list[tuple[str, Any]]:
    """The published months, newest first, with when each was published."""
    return [
        (r["period"], r["published_at"])
        for r in await conn.fetch(
            f'SELECT period, published_at FROM "{schema}".figures_snapshot ORDER BY period DESC'
        )
    ]


async def snapshot(conn: asyncpg.Connection, schema: str, period: str) -> dict[str, Any] | None:
    """One published snapshot (its figures as shown), or None."""
    row = await conn.fetchrow(
        f"SELECT period, period_start, period_end, published_at, rule, synthetic, figures"
        f' FROM "{schema}".figures_snapshot WHERE period = $1',
        period,
    )
    if row is None:
        return None
    out = dict(row)
    if isinstance(out["figures"], str):  # a connection without the JSON codec
        import json

        out["figures"] = json.loads(out["figures"])
    return out


# ------------------------------------------------------------------ accounts and sessions
# The dashboard's own schema (<ns>_readside, services/readside/migrations): the only one it
# writes.

ACCOUNT_COLUMNS = "id, login, kind, pcn, password_hash, oidc_issuer, oidc_subject, disabled_at"


async def sessions_pool(dsn: str, schema: str, size: int = 4) -> asyncpg.Pool:
    """A pool for the dashboard's own schema: it writes sessions (the readside role's
    default of read-only transactions is lifted for this pool only)."""
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        init=init_connection,
        server_settings={
            "search_path": schema,
            "application_name": "linkwell-dashboard-sessions",
            "default_transaction_read_only": "off",
        },
    )


class Accounts:
    """SQL of accounts and sessions in ``schema`` (``<ns>_readside``)."""

    def __init__(self, conn: asyncpg.Connection, schema: str):
        self.conn = conn
        self.s = f'"{schema}"'

    async def add(
        self,
        login: str,
        kind: str,
        pcn: str | None,
        password_hash: str | None,
        oidc: tuple[str, str] | None = None,
    ) -> uuid.UUID:
        account_id = uuid.uuid4()
        await self.conn.execute(
            f"INSERT INTO {self.s}.account (id, login, kind, pcn, password_hash, oidc_issuer,"
            " oidc_subject) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            account_id,
            login,
            kind,
            pcn,
            password_hash,
            oidc[0] if oidc else None,
            oidc[1] if oidc else None,
        )
        return account_id

    async def by_login(self, login: str) -> asyncpg.Record | None:
        return await self.conn.fetchrow(
            f"SELECT {ACCOUNT_COLUMNS} FROM {self.s}.account WHERE login = $1", login
        )

    async def by_subject(self, issuer: str, subject: str) -> asyncpg.Record | None:
        return await self.conn.fetchrow(
            f"SELECT {ACCOUNT_COLUMNS} FROM {self.s}.account"
            " WHERE oidc_issuer = $1 AND oidc_subject = $2",
            issuer,
            subject,
        )

    async def disable(self, login: str) -> asyncpg.Record | None:
        """Disable an account and end its sessions; its row, or None if there is none."""
        row = await self.conn.fetchrow(
            f"UPDATE {self.s}.account SET disabled_at = coalesce(disabled_at, now())"
            f" WHERE login = $1 RETURNING {ACCOUNT_COLUMNS}",
            login,
        )
        if row is not None:
            await self.conn.execute(
                f"UPDATE {self.s}.session SET ended_at = now()"
                " WHERE account_id = $1 AND ended_at IS NULL",
                row["id"],
            )
        return row

    async def listed(self) -> list[asyncpg.Record]:
        return await self.conn.fetch(
            f"SELECT {ACCOUNT_COLUMNS}, created_at FROM {self.s}.account ORDER BY login"
        )

    async def rehash(self, account_id: uuid.UUID, password_hash: str) -> None:
        await self.conn.execute(
            f"UPDATE {self.s}.account SET password_hash = $2 WHERE id = $1",
            account_id,
            password_hash,
        )

    async def start(self, digest: bytes, account_id: uuid.UUID, csrf: str) -> None:
        await self.conn.execute(
            f"INSERT INTO {self.s}.session (digest, account_id, csrf) VALUES ($1, $2, $3)",
            digest,
            account_id,
            csrf,
        )

    async def session(self, digest: bytes) -> asyncpg.Record | None:
        """A session with its account's columns."""
        return await self.conn.fetchrow(
            f"SELECT s.csrf, s.created_at, s.seen_at, s.ended_at,"
            f" {', '.join('a.' + c for c in ACCOUNT_COLUMNS.split(', '))}"
            f" FROM {self.s}.session s JOIN {self.s}.account a ON a.id = s.account_id"
            " WHERE s.digest = $1",
            digest,
        )

    async def seen(self, digest: bytes) -> None:
        await self.conn.execute(
            f"UPDATE {self.s}.session SET seen_at = now() WHERE digest = $1", digest
        )

    async def end(self, digest: bytes) -> None:
        await self.conn.execute(
            f"UPDATE {self.s}.session SET ended_at = coalesce(ended_at, now()) WHERE digest = $1",
            digest,
        )

    async def forget_sessions(self, older_than_seconds: float) -> int:
        """Delete sessions begun longer ago than this (ended or expired long since)."""
        result = await self.conn.execute(
            f"DELETE FROM {self.s}.session WHERE created_at < now() - make_interval(secs => $1)",
            older_than_seconds,
        )
        return int(result.split()[-1])

    async def pending(self, state_digest: bytes, nonce: str) -> None:
        await self.conn.execute(
            f"DELETE FROM {self.s}.sign_in_pending WHERE created_at < now() - interval '10 minutes'"
        )
        await self.conn.execute(
            f"INSERT INTO {self.s}.sign_in_pending (state_digest, nonce) VALUES ($1, $2)",
            state_digest,
            nonce,
        )

    async def take_pending(self, state_digest: bytes, max_seconds: float) -> str | None:
        """The nonce of a sign-on under way (used once), or None: unknown or too old."""
        return await self.conn.fetchval(
            f"DELETE FROM {self.s}.sign_in_pending WHERE state_digest = $1"
            " AND created_at > now() - make_interval(secs => $2) RETURNING nonce",
            state_digest,
            max_seconds,
        )


async def replace_account(
    conn: asyncpg.Connection, schema: str, login: str, kind: str, pcn: str | None, hashed: str
) -> uuid.UUID:
    """An account made afresh (its sessions ended and forgotten): the synthetic model's."""
    s = f'"{schema}"'
    async with conn.transaction():
        await conn.execute(
            f"DELETE FROM {s}.session WHERE account_id IN"
            f" (SELECT id FROM {s}.account WHERE login = $1)",
            login,
        )
        await conn.execute(f"DELETE FROM {s}.account WHERE login = $1", login)
        return await Accounts(conn, schema).add(login, kind, pcn, hashed)
