"""``linkwell gateway``: the professional door's accounts.

linkwell gateway invite --org A81001 --email name@example.org [--org-name N --agency-type T]
                        [--role R]

Prints a one-time invitation link (the database keeps only its digest); the person opens
it and sets their password. Inviting an existing account again resets its password and
ends its sessions.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from services.gateway import pro_actions
from services.gateway.app import SERVICE as GATEWAY
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
