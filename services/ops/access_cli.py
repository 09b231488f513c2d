"""``linkwell access``: broker users and their permissions, from the organisations file.

linkwell access definitions [--sample | --sample-passwords] [--out FILE]
                              a RabbitMQ definitions file (loaded at broker start)
linkwell access check         the committed sample definitions match the generator
linkwell access apply         create/update users and permissions on a running broker
linkwell access show          each user and what it may do
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from services.ops import access
from services.ops.audit_cli import record_or_fail
from services.ops.client import broker_user
from services.ops.settings import OpsSettings
from services.registry import SERVICE_DEFS
from services.runtime import retention, topology
from services.runtime.audit import _ID, AuditAction
from services.runtime.settings import Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Broker users per organisation and service, with the least each needs: show, "
    "apply, definitions, check.",
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq"
ORGANISATIONS = DEPLOY / "organisations.toml"
SAMPLE_DEFINITIONS = DEPLOY / "definitions.json"

OrgsOption = Annotated[
    Path,
    typer.Option(
        "--organisations",
        "-o",
        envvar="LINKWELL_ORGANISATIONS",
        exists=True,
        dir_okay=False,
        help="Agencies, link worker teams and GP integrators allowed to connect.",
    ),
]


def declared_services() -> dict[str, tuple[str, ...]]:
    """Each service and the event types it declares it emits."""
    return {name: tuple(sorted(s.emitted_types)) for name, s in SERVICE_DEFS.items()}


def declared_publishers() -> dict[str, access.Publisher]:
    """Each service that publishes inbound events for organisations (the gateway): the
    types, and the organisations it serves (from its settings)."""
    return {
        name: access.Publisher(
            tuple(sorted(m.TYPE for m in s.publishes)),
            s.routing_words() if s.routing_words else (),
        )
        for name, s in SERVICE_DEFS.items()
        if s.publishes
    }


def plan(settings: Settings, organisations: Path) -> access.AccessPlan:
    return access.AccessPlan(
        names=settings.names,
        services=declared_services(),
        organisations=access.Organisations.load(organisations),
        publishers=declared_publishers(),
    )


def generate(
    settings: Settings, organisations: Path, *, sample: bool, hashes: bool = True
) -> dict[str, object]:
    """``hashes`` False: no password at all (the committed sample, which no one can sign
    in with); else the sample passwords dev-<user> or the environment's."""
    principals = plan(settings, organisations).principals()
    passwords = access.passwords_for(principals, sample=sample) if hashes else None
    return access.definitions(
        principals,
        access.vhost_of(settings.amqp_url),
        passwords,
        retention.queue_policies(settings),
    )


def render(defs: dict[str, object]) -> str:
    return json.dumps(defs, indent=2) + "\n"


@app.command()
def definitions(
    organisations: OrgsOption = ORGANISATIONS,
    sample_passwords: Annotated[
        bool, typer.Option(help="Development passwords dev-<user> instead of the environment.")
    ] = False,
    sample: Annotated[
        bool,
        typer.Option(
            help="The committed sample: users without password hashes, which no one can "
            "sign in as (the development stack gives them dev-<user> at its start)."
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Write a definitions file. Passwords come from LINKWELL_PASSWORD_<USER> (each user
    named in upper case, other characters as _) unless --sample-passwords or --sample."""
    try:
        text = render(
            generate(Settings(), organisations, sample=sample_passwords, hashes=not sample)
        )
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from None
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f"wrote {out}", err=True)


def stale(committed: Path, organisations: Path) -> list[str]:
    """Why the committed sample definitions differ from a fresh generation (empty if not)."""
    settings = Settings(namespace="linkwell", amqp_url="amqp://rabbitmq:5672/")
    fresh = generate(settings, organisations, sample=True, hashes=False)
    current = json.loads(committed.read_text())
    problems = []
    if access.without_secrets(current) != access.without_secrets(fresh):
        problems.append(f"{committed} is not what the generator makes from {organisations}")
    for user in current.get("users", []):
        if user.get("password_hash", "") != "":
            problems.append(f"{user['name']} has a password hash: the sample must hold none")
    return problems


@app.command()
def check(
    organisations: OrgsOption = ORGANISATIONS,
    committed: Annotated[Path, typer.Option(exists=True)] = SAMPLE_DEFINITIONS,
) -> None:
    """Fail if the committed sample definitions are out of date."""
    problems = stale(committed, organisations)
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        typer.echo(
            "regenerate: LINKWELL_NAMESPACE=linkwell AMQP_URL=amqp://rabbitmq:5672/ "
            f"linkwell access definitions --sample --out {committed}",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"{committed} is up to date")


@app.command("apply", short_help="Create the users and set what each may do.")
def apply_(
    organisations: OrgsOption = ORGANISATIONS,
    reset_passwords: Annotated[
        bool, typer.Option(help="Give existing users new passwords too.")
    ] = False,
    sample_passwords: Annotated[
        bool,
        typer.Option(
            help="Development only: give each user the sample password dev-<user>, as the "
            "README's programs expect."
        ),
    ] = False,
) -> None:
    """Create missing users and set every user's permissions on a running broker.

    Through the management API at RABBITMQ_MANAGEMENT_URL with AMQP_URL's (administrator)
    credentials; also makes each organisation's queue with its bindings. A new user gets
    LINKWELL_PASSWORD_<USER> if set (or dev-<user> with --sample-passwords), else a random
    password printed here once; existing users keep theirs unless --reset-passwords."""
    import os

    from yarl import URL

    settings = Settings()
    principals = plan(settings, organisations).principals()
    given = {
        p.username: os.environ[access.password_env(p.username)]
        for p in principals
        if access.password_env(p.username) in os.environ
    }
    if sample_passwords:
        given = {p.username: access.sample_password(p.username) for p in principals} | given
    url = URL(settings.amqp_url)
    with access.ManagementApi(
        OpsSettings().management_url, broker_user(settings.amqp_url), url.password or ""
    ) as api:
        result = access.apply(
            api,
            principals,
            access.vhost_of(settings.amqp_url),
            passwords=given,
            reset_passwords=reset_passwords,
            policies=retention.queue_policies(settings),
        )
    queues = access.organisation_queues(principals)
    asyncio.run(topology.declare_organisation_queues(settings, queues))
    for name in result.created:  # a password issued: on the trail before it is printed
        record_or_fail(
            AuditAction.TOKEN_ISSUED,
            recipient_org=name if _ID.fullmatch(name) else None,
            detail={"what": "broker_user"},
        )
    for name in result.updated:
        typer.echo(f"updated  {name}")
    for name, password in result.created.items():
        shown = password
        if given.get(name) == password and not sample_passwords:
            shown = "(from environment)"
        typer.echo(f"password {name} {shown}")


@app.command(short_help="Each user and what it may publish and receive.")
def show(organisations: OrgsOption = ORGANISATIONS) -> None:
    """Each user, its kind, and the routing keys it may publish and bind."""
    access_plan = plan(Settings(), organisations)
    for p in access_plan.principals():
        typer.echo(f"{p.username}  ({p.kind}{': ' + p.description if p.description else ''})")
        for t in p.topics:
            typer.echo(f"    {t.exchange}: publish {t.write}")
        if p.queue:
            typer.echo(f"    consumes {p.queue}, bound to: {', '.join(p.bindings)}")
    grants = access_plan.trusted_users()
    if grants:
        typer.echo(f"intake's LINKWELL_TRUSTED_USERS (no operator user): {','.join(grants)}")


token_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Dashboard tokens: a PCN's sees its own figures, a commissioner's every PCN's "
    "with small numbers suppressed.",
)
app.add_typer(token_app, name="token", short_help="Issue, list or revoke dashboard tokens.")


def _reporting(settings: Settings) -> str:
    return settings.names.schema("reporting")


async def _with_db(settings: Settings, work):  # type: ignore[no-untyped-def]
    import asyncpg

    conn = await asyncpg.connect(settings.database_url)
    try:
        return await work(conn)
    finally:
        await conn.close()


@token_app.command("issue")
def token_issue(
    label: Annotated[str, typer.Argument(help="Who it is for, e.g. 'U12345 team'.")],
    pcn: Annotated[str | None, typer.Option(help="A PCN's token (its ODS code).")] = None,
    commissioner: Annotated[
        bool, typer.Option("--commissioner", help="A commissioner's token (every PCN).")
    ] = False,
) -> None:
    """Issue a token; it is printed once, and only its digest is kept."""
    from services.readside import tokens

    if (pcn is None) == (not commissioner):
        raise typer.BadParameter("give either --pcn CODE or --commissioner")
    settings = Settings()

    async def go(conn):  # type: ignore[no-untyped-def]
        return await tokens.issue(
            conn,
            _reporting(settings),
            kind="pcn" if pcn else "commissioner",
            label=label,
            pcn=pcn,
        )

    token = asyncio.run(_with_db(settings, go))
    record_or_fail(
        AuditAction.TOKEN_ISSUED,
        recipient_org=pcn,
        detail={"kind": "pcn" if pcn else "commissioner", "what": "dashboard_token"},
    )
    typer.echo(token)


@token_app.command("revoke")
def token_revoke(
    label: Annotated[str, typer.Argument(help="The label it was issued with.")],
) -> None:
    """Revoke every token issued with this label."""
    from services.readside import tokens

    settings = Settings()
    count = asyncio.run(_with_db(settings, lambda c: tokens.revoke(c, _reporting(settings), label)))
    typer.echo(f"revoked {count} token(s) labelled {label!r}")
    raise typer.Exit(0 if count else 1)


@token_app.command("list")
def token_list() -> None:
    """Every token's label, kind and PCN (never the token)."""
    from services.readside import tokens

    settings = Settings()
    for row in asyncio.run(_with_db(settings, lambda c: tokens.listed(c, _reporting(settings)))):
        state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
        typer.echo(f"{row['label']:<30} {row['kind']:<12} {row['pcn'] or '-':<8} {state}")
