"""``linkwell audit``: the trail of disclosures, sign-ins, page views and operator actions
kept by the audit service (``<ns>_audit``, ``docs/architecture/audit.md``).

linkwell audit [--person UUID] [--referral UUID] [--org CODE] [--since T] [--until T]
               [--format table|json] [--limit N]
linkwell audit verify

Operator commands record themselves with ``record_operator_action`` (published persistent
and broker-confirmed to ``<ns>.events`` before the command reports success).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import asyncpg
import typer

from contracts.events import AuditAction, AuditActorKind, AuditRecipientKind
from services.audit import domain
from services.audit.store import chain, query
from services.runtime.audit import disclosure, publish_record
from services.runtime.db import init_connection
from services.runtime.settings import Settings

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    invoke_without_command=True,
    help="The audit trail: who received which person's data, who signed in and looked, "
    "what operators did. Filters combine (AND); times are ISO dates or date-times (UTC "
    "when no zone is given).",
)


def parse_time(text: str | None, *, end: bool = False) -> datetime | None:
    if text is None:
        return None
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), time.min, UTC)
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO date or date-time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_uuid(text: str | None, what: str) -> uuid.UUID | None:
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        raise typer.BadParameter(f"{what} must be a UUID") from None


def as_dict(record: domain.Record) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "at": domain.utc(record.at),
        "action": record.action,
        "recipient_kind": record.recipient_kind,
        "recipient_org": record.recipient_org,
        "referral_id": str(record.referral_id) if record.referral_id else None,
        "person_id": str(record.person_id) if record.person_id else None,
        "by_service": record.by_service,
        "by_kind": record.by_kind,
        "by": record.by,
        "detail": dict(record.detail),
        "event_id": record.event_id,
    }


COLUMNS = ("seq", "at", "action", "recipient", "referral_id", "by", "detail")


def table(records: list[domain.Record]) -> str:
    rows = [
        (
            str(r.seq),
            r.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            r.action,
            f"{r.recipient_kind}:{r.recipient_org}" if r.recipient_org else r.recipient_kind,
            str(r.referral_id) if r.referral_id else "-",
            f"{r.by_service}/{r.by}" if r.by else r.by_service,
            " ".join(f"{k}={v}" for k, v in sorted(r.detail.items()) if k != "event_id") or "-",
        )
        for r in records
    ]
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.append(f"{len(records)} record{'s' if len(records) != 1 else ''}")
    return "\n".join(lines)


async def _connect(settings: Settings) -> asyncpg.Connection:
    conn = await asyncpg.connect(settings.database_url)
    await init_connection(conn)
    return conn


def _no_trail(settings: Settings) -> typer.Exit:
    """Said when the namespace has no audit trail (a wrong LINKWELL_NAMESPACE, or the audit
    service never migrated there), instead of a traceback."""
    schema = settings.names.schema("audit")
    typer.echo(
        f"no audit trail in {schema}: check LINKWELL_NAMESPACE ({settings.namespace}) and "
        "that the audit service has run there (linkwell migrate)",
        err=True,
    )
    return typer.Exit(2)


async def _query(settings: Settings, **filters: Any) -> list[domain.Record]:
    conn = await _connect(settings)
    try:
        async with conn.transaction(readonly=True):
            return await query(conn, settings.names.schema("audit"), **filters)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        raise _no_trail(settings) from None
    finally:
        await conn.close()


async def _verify(settings: Settings) -> tuple[int, domain.Break | None]:
    conn = await _connect(settings)
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            return domain.verify(await chain(conn, settings.names.schema("audit")))
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        raise _no_trail(settings) from None
    finally:
        await conn.close()


@app.callback()
def audit(
    ctx: typer.Context,
    person: Annotated[str | None, typer.Option(help="Linkwell's id of the person.")] = None,
    referral: Annotated[str | None, typer.Option(help="A referral id.")] = None,
    org: Annotated[str | None, typer.Option(help="The receiving organisation's code.")] = None,
    since: Annotated[str | None, typer.Option(help="From this date or time (inclusive).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time; a date: to its end.")] = None,
    format_: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
) -> None:
    """Print the records that match, oldest first."""
    if ctx.invoked_subcommand is not None:
        return
    if format_ not in ("table", "json"):
        raise typer.BadParameter("--format is table or json")
    records = asyncio.run(
        _query(
            Settings(),
            person=parse_uuid(person, "--person"),
            referral=parse_uuid(referral, "--referral"),
            org=org,
            since=parse_time(since),
            until=parse_time(until, end=True),
            limit=limit,
        )
    )
    if format_ == "json":
        typer.echo(json.dumps([as_dict(r) for r in records], indent=2))
    else:
        typer.echo(table(records))


@app.command()
def verify() -> None:
    """Recompute the hash chain; exit 1 at the first record that does not follow."""
    count, broken = asyncio.run(_verify(Settings()))
    if broken is not None:
        typer.echo(f"audit trail BROKEN at record {broken.seq}: {broken.reason}", err=True)
        raise typer.Exit(1)
    typer.echo(f"audit trail intact: {count} record{'s' if count != 1 else ''}")


def operator() -> str:
    """Who runs an operator command: the login name (an id, never typed in by someone else)."""
    name = os.environ.get("LINKWELL_OPERATOR") or os.environ.get("USER") or "operator"
    cleaned = "".join(c for c in name if c.isalnum() or c in "._-@")[:64]
    return cleaned or "operator"


async def record_operator_action(
    settings: Settings,
    action: AuditAction | str,
    *,
    recipient_org: str | None = None,
    referral_id: uuid.UUID | str | None = None,
    person_id: uuid.UUID | str | None = None,
    detail: dict[str, Any] | None = None,
    connection: Any = None,
) -> str:
    """Publish an operator action's record to <ns>.events, persistent, and wait for the
    broker's confirm; raises if it is not confirmed (the command must then fail). Returns
    the record's event id."""
    data = disclosure(
        action,
        AuditRecipientKind.OPERATOR,
        recipient_org,
        by_service="ops",
        by_kind=AuditActorKind.OPERATOR,
        by=operator(),
        referral_id=referral_id,
        person_id=person_id,
        detail=detail,
    )
    return await publish_record(settings, data, "ops", connection)


def record_or_fail(action: AuditAction | str, **fields: Any) -> None:
    """For a command: record its action (confirmed by the broker) or stop it, saying why,
    before it prints what it made (a token, a link, a password)."""
    try:
        asyncio.run(record_operator_action(Settings(), action, **fields))
    except Exception as exc:  # the broker is away or refused it: report, never succeed
        typer.echo(
            f"not done: the audit trail did not confirm the record ({type(exc).__name__})",
            err=True,
        )
        raise typer.Exit(3) from None
