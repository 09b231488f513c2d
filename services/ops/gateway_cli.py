"""``linkwell gateway``: the professional door's accounts.

linkwell gateway invite --org A81001 --email name@example.org [--org-name N --agency-type T]
                        [--role R]

Prints a one-time invitation link (the database keeps only its digest); the person opens
it and sets their password. Inviting an existing account again resets its password and
ends its sessions.

linkwell gateway client issue --org A81001 --name "Riverside EMIS" [--expires 2027-03-31]
linkwell gateway client list [--org A81001]
linkwell gateway client revoke <client id>
linkwell gateway client endpoint <client id> --url https://... | --remove

API credentials for an organisation's own system (the JSON API, the FHIR endpoints); a
BaRS client's endpoint is where each step of its referrals is pushed back as a
``servicerequest-response`` message (docs/architecture/fhir.md).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time
from typing import Annotated, Any

import typer

from services.gateway import clients, pro_actions
from services.gateway.app import SERVICE as GATEWAY
from services.gateway.fhir import push
from services.gateway.settings import GatewaySettings
from services.ops.audit_cli import record_or_fail
from services.runtime.audit import AuditAction
from services.runtime.db import create_pool
from services.runtime.runner import migrate
from services.runtime.settings import Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="The gateway's professional accounts: invite a person to make referrals.",
)


def link(own: GatewaySettings, token: str) -> str:
    base = own.gateway_public_url.rstrip("/") or f"http://{own.gateway_host}:{own.gateway_port}"
    return f"{base}/pro/invitation/{token}"


async def _invite(
    email: str, org: str, org_name: str | None, agency_type: str | None, role: str | None
) -> str:
    settings, own = Settings(), GatewaySettings()
    await migrate(settings, GATEWAY)
    pool = await create_pool(settings.database_url, settings.names.schema("gateway"), "ops", 1)
    try:
        _, token = await pro_actions.invite(
            pool,
            organisation=org,
            email=email,
            serves=own.gateway_organisations,
            hours=own.gateway_invitation_hours,
            organisation_name=org_name,
            agency_type=agency_type,
            role=role,
        )
    finally:
        await pool.close()
    return link(own, token)


@app.command()
def invite(
    email: Annotated[str, typer.Option(help="The person's work email: how they sign in.")],
    org: Annotated[
        str, typer.Option(help="Their organisation's code (one of LINKWELL_GATEWAY_ORGANISATIONS).")
    ],
    org_name: Annotated[
        str | None, typer.Option(help="The organisation's name (needed on its first invitation).")
    ] = None,
    agency_type: Annotated[
        str | None,
        typer.Option(help="Its agency type, e.g. vcse (needed on its first invitation)."),
    ] = None,
    role: Annotated[
        str | None, typer.Option(help="Their role, as referrals name it (never their name).")
    ] = None,
) -> None:
    """Invite a person to make referrals for their organisation: prints a one-time link
    to set their password (valid LINKWELL_GATEWAY_INVITATION_HOURS)."""
    own = GatewaySettings()
    try:
        url = asyncio.run(_invite(email, org, org_name, agency_type, role))
    except pro_actions.NotServed:
        typer.echo(
            f"{org} is not served by the gateway: add it to LINKWELL_GATEWAY_ORGANISATIONS "
            f"(now {','.join(own.gateway_organisations) or 'empty'}) and grant the gateway's "
            "broker user for it (`linkwell access show` prints the grant).",
            err=True,
        )
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    record_or_fail(AuditAction.INVITE, recipient_org=org, detail={"what": "gateway_account"})
    typer.echo(
        f"invitation for {email.strip().lower()} at {org}; "
        f"valid {own.gateway_invitation_hours} hours:"
    )
    typer.echo(url)


client_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="API credentials: an organisation's own system sending referrals over HTTP.",
)
app.add_typer(client_app, name="client")


async def _pool() -> Any:
    settings = Settings()
    await migrate(settings, GATEWAY)
    return await create_pool(settings.database_url, settings.names.schema("gateway"), "ops", 1)


def _expiry(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("give a date (2027-03-31) or a time with its offset") from None
    if when.tzinfo is None:  # a date: the credential works until the end of that day, UTC
        when = datetime.combine(when.date(), time.max, tzinfo=UTC)
    return when


@client_app.command("issue")
def client_issue(
    org: Annotated[
        str, typer.Option(help="The organisation's code (one of LINKWELL_GATEWAY_ORGANISATIONS).")
    ],
    name: Annotated[str, typer.Option(help="What the client is, e.g. 'Riverside EMIS'.")],
    expires: Annotated[
        str | None, typer.Option(help="Last day it works (YYYY-MM-DD, UTC); none: until revoked.")
    ] = None,
    org_name: Annotated[
        str | None, typer.Option(help="The organisation's name (needed the first time).")
    ] = None,
    agency_type: Annotated[
        str | None, typer.Option(help="Its agency type, e.g. vcse (needed the first time).")
    ] = None,
) -> None:
    """Issue a credential: prints it once (only its digest is kept)."""
    own = GatewaySettings()
    when = _expiry(expires)

    async def run() -> clients.Issued:
        pool = await _pool()
        try:
            return await clients.issue(
                pool,
                organisation=org,
                name=name,
                serves=own.serves,
                pepper=own.gateway_client_pepper.get_secret_value(),
                expires_at=when,
                organisation_name=org_name,
                agency_type=agency_type,
            )
        finally:
            await pool.close()

    try:
        issued = asyncio.run(run())
    except pro_actions.NotServed:
        typer.echo(
            f"{org} is not served by the gateway: add it to LINKWELL_GATEWAY_ORGANISATIONS.",
            err=True,
        )
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    record_or_fail(
        AuditAction.TOKEN_ISSUED,
        recipient_org=org,
        detail={"what": "api_client", "change": "issued", "client_id": str(issued.client_id)},
    )
    until = when.date().isoformat() if when else "until revoked"
    typer.echo(f"client {issued.client_id} for {org} ({until}); the credential, shown once:")
    typer.echo(issued.token)


@client_app.command("list")
def client_list(
    org: Annotated[str | None, typer.Option(help="Only this organisation's.")] = None,
) -> None:
    """Every credential: id, organisation, name, issued, expiry, state (never the secret)."""

    async def run() -> list[Any]:
        pool = await _pool()
        try:
            return await clients.listed(pool, org)
        finally:
            await pool.close()

    now = datetime.now(UTC)
    for row in asyncio.run(run()):
        if row.revoked_at is not None:
            state = f"revoked {row.revoked_at:%Y-%m-%d}"
        elif row.expires_at is not None and row.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        expiry = f"{row.expires_at:%Y-%m-%d}" if row.expires_at else "-"
        typer.echo(
            f"{row.id}\t{row.organisation}\t{row.name}\t{row.created_at:%Y-%m-%d}\t{expiry}\t{state}"
        )


@client_app.command("revoke")
def client_revoke(client_id: Annotated[str, typer.Argument(help="The client's id.")]) -> None:
    """Revoke a credential: refused from the next request on."""
    try:
        which = uuid.UUID(client_id)
    except ValueError:
        typer.echo("not a client id", err=True)
        raise typer.Exit(2) from None

    async def run() -> str | None:
        pool = await _pool()
        try:
            return await clients.revoke(pool, which)
        finally:
            await pool.close()

    org = asyncio.run(run())
    if org is None:
        typer.echo(f"no client {which}", err=True)
        raise typer.Exit(1)
    record_or_fail(
        # access withdrawn is the kind of access given, with change=revoked
        AuditAction.TOKEN_ISSUED,
        recipient_org=org,
        detail={"what": "api_client", "change": "revoked", "client_id": str(which)},
    )
    typer.echo(f"client {which} revoked")


@client_app.command("endpoint")
def client_endpoint(
    client_id: Annotated[str, typer.Argument(help="The client's id.")],
    url: Annotated[
        str | None,
        typer.Option(
            help="Where its system takes BaRS messages (https://; http only in development mode)."
        ),
    ] = None,
    remove: Annotated[bool, typer.Option(help="Push nothing to it any more.")] = False,
) -> None:
    """Register where a BaRS client's system takes servicerequest-response messages: each
    step of its organisation's $process-message referrals is pushed there."""
    try:
        which = uuid.UUID(client_id)
    except ValueError:
        typer.echo("not a client id", err=True)
        raise typer.Exit(2) from None
    if (url is None) == (not remove):
        typer.echo("give --url or --remove", err=True)
        raise typer.Exit(2)
    address: str | None = None
    if url is not None:
        try:
            address = push.check_endpoint(url, development=Settings().mode == "development")
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None

    async def run() -> str | None:
        pool = await _pool()
        try:
            return await clients.set_endpoint(pool, which, address)
        finally:
            await pool.close()

    org = asyncio.run(run())
    if org is None:
        typer.echo(f"no client {which}", err=True)
        raise typer.Exit(1)
    record_or_fail(
        AuditAction.ENDPOINT,
        recipient_org=org,
        detail={"client": str(which), "what": "removed" if address is None else "registered"},
    )
    typer.echo(f"client {which}: " + (f"steps pushed to {address}" if address else "no pushes"))
