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


account_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Dashboard accounts, one per person: a PCN's sees its own figures, a "
    "commissioner's every PCN's with small numbers suppressed. (The shared PCN tokens of "
    "earlier versions admit no one: make an account for each person who held one.)",
)
app.add_typer(account_app, name="account", short_help="Add, disable or list dashboard accounts.")


async def _with_db(settings: Settings, work):  # type: ignore[no-untyped-def]
    import asyncpg

    from services.readside import migrate_own

    await migrate_own(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await work(conn)
    finally:
        await conn.close()


@account_app.command("add")
def account_add(
    login: Annotated[str, typer.Argument(help="The person's account name, e.g. 'jo.u12345'.")],
    pcn: Annotated[str | None, typer.Option(help="A PCN's account (its ODS code).")] = None,
    commissioner: Annotated[
        bool, typer.Option("--commissioner", help="A commissioner's account (every PCN).")
    ] = False,
    oidc_subject: Annotated[
        str | None,
        typer.Option(
            help="Signs in by single sign-on only: the provider's value of the subject "
            "claim (LINKWELL_DASHBOARD_OIDC_SUBJECT_CLAIM) for this person; no password."
        ),
    ] = None,
) -> None:
    """Add an account. Without --oidc-subject a password is made, printed once, and only
    its argon2id hash kept. Recorded on the audit trail as an operator action."""
    from services.readside import sessions
    from services.readside.settings import DashboardSettings
    from services.readside.store import Accounts
    from services.runtime import accounts

    login = login.strip().lower()
    if not sessions.login_ok(login):
        raise typer.BadParameter("an account name is 2 to 64 of a-z, 0-9, '.', '_' or '-'")
    try:
        kind, code = sessions.account_kind(pcn, commissioner)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    settings = Settings()
    oidc = None
    if oidc_subject is not None:
        issuer = DashboardSettings().oidc_issuer
        if not issuer:
            raise typer.BadParameter("--oidc-subject needs LINKWELL_DASHBOARD_OIDC_ISSUER")
        oidc = (issuer, oidc_subject)
    password = None if oidc else accounts.new_token()
    hashed = accounts.hash_password(password) if password else None

    async def go(conn):  # type: ignore[no-untyped-def]
        import asyncpg

        try:
            return await Accounts(conn, settings.names.schema("readside")).add(
                login, kind, code, hashed, oidc
            )
        except asyncpg.UniqueViolationError:
            return None

    account_id = asyncio.run(_with_db(settings, go))
    if account_id is None:
        typer.echo(f"an account named {login!r} (or with that subject) exists already", err=True)
        raise typer.Exit(1)
    record_or_fail(
        AuditAction.TOKEN_ISSUED,
        recipient_org=code,
        detail={
            "kind": kind,
            "what": "dashboard_account",
            "change": "added",
            "account_id": str(account_id),
        },
    )
    typer.echo(f"account {login} ({kind}{' ' + code if code else ''}) id {account_id}")
    if password:
        typer.echo(f"password (shown once): {password}")


@account_app.command("disable")
def account_disable(
    login: Annotated[str, typer.Argument(help="The account name.")],
) -> None:
    """Disable an account and end its sessions at once. Recorded on the audit trail."""
    from services.readside.store import Accounts

    settings = Settings()
    row = asyncio.run(
        _with_db(
            settings,
            lambda c: Accounts(c, settings.names.schema("readside")).disable(login.strip().lower()),
        )
    )
    if row is None:
        typer.echo(f"no account named {login!r}", err=True)
        raise typer.Exit(1)
    record_or_fail(
        # the trail's kinds of operator action name access given (token_issued); a
        # withdrawal of it is that kind with change=disabled
        AuditAction.TOKEN_ISSUED,
        recipient_org=row["pcn"],
        detail={"what": "dashboard_account", "change": "disabled", "account_id": str(row["id"])},
    )
    typer.echo(f"disabled {row['login']}; its sessions have ended")


@account_app.command("list")
def account_list() -> None:
    """Every account's name, kind, PCN and state (never a password)."""
    from services.readside.store import Accounts

    settings = Settings()
    rows = asyncio.run(
        _with_db(settings, lambda c: Accounts(c, settings.names.schema("readside")).listed())
    )
    for row in rows:
        state = f"disabled {row['disabled_at']:%Y-%m-%d}" if row["disabled_at"] else "active"
        how = "single sign-on" if row["oidc_subject"] else "password"
        typer.echo(f"{row['login']:<30} {row['kind']:<12} {row['pcn'] or '-':<8} {how:<14} {state}")
