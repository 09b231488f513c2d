"""The ``linkwell`` command: run, operate and try the pipeline (``linkwell --help``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from services.ops import access
from services.ops.access_cli import app as access_app
from services.ops.asyncapi_cli import app as asyncapi_app
from services.ops.audit_cli import app as audit_app
from services.ops.client import publish_inbound
from services.ops.dlq_cli import app as dlq_app
from services.ops.gateway_cli import app as gateway_app
from services.ops.openapi_cli import app as openapi_app
from services.ops.report_cli import app as report_app
from services.ops.subject_cli import app as subject_app
from services.registry import SERVICE_DEFS
from services.runtime import topology as topo
from services.runtime.logs import configure
from services.runtime.runner import migrate as migrate_service
from services.runtime.runner import run as run_service
from services.runtime.settings import Settings

HELP = (
    "Linkwell: social prescribing referrals as events. Run the services, operate the broker "
    "and the database, submit as an agency would, see the evidence."
)
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, help=HELP)
app.add_typer(asyncapi_app, name="asyncapi", short_help="Write or check the AsyncAPI documents.")
app.add_typer(openapi_app, name="openapi", short_help="Write or check the OpenAPI document.")
app.add_typer(access_app, name="access", short_help="Broker users and what each may do.")
app.add_typer(dlq_app, name="dlq", short_help="List dead letters; replay them once fixed.")
app.add_typer(gateway_app, name="gateway", short_help="Invite professionals to make referrals.")
docs_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Documentation generated from the code (the README's type table).",
)
db_app = typer.Typer(no_args_is_help=True, help="PostgreSQL roles: least privilege per service.")
app.add_typer(db_app, name="db", short_help="PostgreSQL roles: one per service, a read-only one.")
app.add_typer(docs_app, name="docs", short_help="Print documentation made from the code.")
app.add_typer(audit_app, name="audit", short_help="The audit trail of disclosures; verify it.")
app.add_typer(report_app, name="report", short_help="Figures for practices, PCNs, commissioners.")
app.add_typer(subject_app, name="subject", short_help="A person's rights: export, rectify, erase.")


@app.command("import", short_help="Publish a file of referrals, resumably.")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".jsonl or .csv")],
    org: Annotated[str, typer.Option(help="The organisation that sends them (its code).")],
    pace: Annotated[
        bool,
        typer.Option(
            help="Give way to live referrals: send only while the pipeline's queues are short "
            "(--no-pace floods them, as imports did before; for measuring only)."
        ),
    ] = True,
) -> None:
    """Publish a file of referrals as one organisation, with progress; run it again after an
    interruption and it carries on, never sending a referral twice. It sends only as fast
    as the pipeline takes referrals in, so live referrals are never stuck behind it.

    JSON lines: one referral's data per line (the contract's fields); CSV: the columns
    listed in services/ops/importer.py. Rows that do not meet the contract are reported by
    line and field, never sent."""
    from services.ops.importer import run_import

    outcome = asyncio.run(run_import(Settings(), file, org, report=typer.echo, pace=pace))
    typer.echo(
        f"sent {outcome.sent:,} in {outcome.seconds:.1f} s ({outcome.rate:,.0f}/s); "
        f"{outcome.skipped:,} already sent before; {len(outcome.invalid)} invalid"
        + (f"; gave way to live work for {outcome.paused:.1f} s" if outcome.paced else "")
    )
    for line, fields in outcome.invalid[:20]:
        typer.echo(f"  line {line}: {', '.join(fields)}")
    if len(outcome.invalid) > 20:
        typer.echo(f"  ... and {len(outcome.invalid) - 20} more")
    raise typer.Exit(1 if outcome.invalid else 0)


@app.command(short_help="Serve the dashboard for PCN teams and commissioners.")
def dashboard(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="Serve the synthetic model (linkwell synthetic).")
    ] = False,
) -> None:
    """Serve the dashboard: server-rendered pages, a session per person (linkwell access account).
    Prints its address first."""
    from services.ops.report_cli import serve

    serve(host, port, synthetic)


@app.command(short_help="Fill a separate model with a year of synthetic referrals.")
def synthetic(
    referrals: Annotated[int, typer.Option(min=50, max=50_000, help="About how many.")] = 1800,
    seed: Annotated[int, typer.Option(help="The same seed gives the same referrals.")] = 1,
) -> None:
    """A believable year of synthetic referrals across four PCNs, in their own schema
    (<ns>_synthetic), never mixed with real figures; read with linkwell report --synthetic
    and linkwell dashboard --synthetic, marked SYNTHETIC wherever they show."""
    from contracts import UK
    from services.ops.report_cli import fill_synthetic, model_schema

    settings = Settings()
    year, issued = asyncio.run(fill_synthetic(settings, referrals, seed))
    schema = model_schema(settings, True)
    typer.echo(
        f"SYNTHETIC: {len(year.referrals):,} referrals, {len(year.rejections)} refusals and "
        f"{len(year.roster)} link workers in {schema} (PCNs "
        f"{', '.join(sorted({w.pcn for w in year.roster}))})"
    )
    typer.echo("dashboard accounts for the synthetic model (passwords shown once):")
    for login, password in issued:
        typer.echo(f"  {login}: {password}")
    today = datetime.now(UK).date()
    typer.echo(
        f"next: linkwell report --synthetic --by pcn --from {today - timedelta(days=364)} "
        f"--to {today} --plot var/synthetic.png\n"
        "      linkwell dashboard --synthetic --port 8091"
    )


@docs_app.command("types", short_help="The README's table of event types.")
def docs_types() -> None:
    """Print the README's table of event types, generated from the services' declarations."""
    from services.ops.catalogue import type_table

    typer.echo(type_table(), nl=False)


@db_app.command("roles", short_help="Create a role per service and a read-only one.")
def db_roles(
    apply: Annotated[
        bool, typer.Option("--apply", help="Run it against DATABASE_URL (as an administrator).")
    ] = False,
) -> None:
    """Print (or, with --apply, run) the SQL that gives each service a role owning only its
    own schemas and the read side a role that can only SELECT the reporting model
    (services/ops/roles.py). Idempotent. A role's password, where set, comes from
    LINKWELL_DB_PASSWORD_<ROLE> (LINKWELL_DB_PASSWORD_LINKWELL_INTAKE...); connect each
    service with its role in DATABASE_URL, and run `linkwell migrate` afterwards as the
    administrator (it applies each schema's migrations as its owner)."""
    from urllib.parse import urlsplit

    from services.ops import roles

    settings = Settings()
    names = settings.names
    schemas = {name: s.schema_names(names) for name, s in SERVICE_DEFS.items()}
    everyone = [roles.role_name(settings.namespace, n) for n in [*schemas, roles.READSIDE]]
    passwords = {
        role: os.environ[key]
        for role in everyone
        if (key := "LINKWELL_DB_PASSWORD_" + role.upper().replace("-", "_")) in os.environ
    }
    database = urlsplit(settings.database_url).path.lstrip("/") or "postgres"
    sql = roles.statements(
        settings.namespace,
        database,
        schemas,
        names.schema("reporting"),
        passwords,
        readside_schema=names.schema("readside"),
    )
    if not apply:
        for statement in sql:
            typer.echo(statement + ";")
        return

    async def go() -> None:
        import asyncpg

        conn = await asyncpg.connect(settings.database_url)
        try:
            async with conn.transaction():
                for statement in sql:
                    await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(go())
    typer.echo(f"roles: {', '.join(everyone)}")


@app.command(short_help="Apply every service's database migrations.")
def migrate() -> None:
    """Apply each service's migrations to its own schema (idempotent, safe to run twice)."""
    settings = Settings()

    async def go() -> None:
        for name, service in SERVICE_DEFS.items():
            applied = await migrate_service(settings, service)
            typer.echo(f"{settings.names.schema(name)}: {', '.join(applied) or 'up to date'}")
        # the dashboard's own schema: its people's accounts and sessions
        from services.readside import migrate_own

        applied = await migrate_own(settings)
        typer.echo(f"{settings.names.schema('readside')}: {', '.join(applied) or 'up to date'}")

    asyncio.run(go())


@app.command(short_help="Declare exchanges and queues (as an admin).")
def topology(
    organisations: Annotated[
        Path | None,
        typer.Option(
            envvar="LINKWELL_ORGANISATIONS",
            dir_okay=False,
            help="Also make each organisation's queue (default: "
            "deploy/rabbitmq/organisations.toml, where it exists).",
        ),
    ] = None,
) -> None:
    """Declare exchanges, service queues, retry and dead-letter queues, and organisations'
    queues (idempotent; run as a broker administrator)."""
    from services.ops.access_cli import ORGANISATIONS, plan

    settings = Settings()
    asyncio.run(topo.declare(settings, [s.topology for s in SERVICE_DEFS.values()]))
    typer.echo(f"declared topology for namespace {settings.namespace!r}")
    source = organisations or (ORGANISATIONS if ORGANISATIONS.exists() else None)
    if source is not None:
        queues = access.organisation_queues(plan(settings, source).principals())
        asyncio.run(topo.declare_organisation_queues(settings, queues))
        typer.echo(f"declared {len(queues)} organisation queues from {source}")


@app.command(short_help="Run a service, or all five.")
def run(
    service: Annotated[
        str, typer.Argument(help="intake, triage, notify, outcomes, gateway or all")
    ],
) -> None:
    """Run one service in this process, or all five as separate child processes. The
    gateway serves the people's door on LINKWELL_GATEWAY_PORT (http://127.0.0.1:8070/refer
    by default)."""
    if service == "all":
        raise typer.Exit(supervise(list(SERVICE_DEFS)))
    if service not in SERVICE_DEFS:
        raise typer.BadParameter(f"choose one of {', '.join(SERVICE_DEFS)} or all")
    run_service(SERVICE_DEFS[service])


def supervise(names: list[str]) -> int:
    """Start each service as its own process; restart one that dies; stop all on a signal.
    Each serves health and metrics on its own port: LINKWELL_HTTP_PORT plus its index
    (intake 8080, triage 8081, notify 8082, outcomes 8083, gateway 8084 by default).

    Each child's output is read line by line and written whole, one line at a time, so
    that the JSON log lines of five processes never interleave on the shared stdout."""
    import threading

    procs: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False
    base = Settings().http_port
    out = threading.Lock()

    def relay(stream: Any, target: Any) -> None:
        for line in iter(stream.readline, b""):
            with out:
                target.write(line if line.endswith(b"\n") else line + b"\n")
                target.flush()

    def start(name: str) -> None:
        port = base + list(SERVICE_DEFS).index(name) if base else 0
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.ops.main", "run", name],
            env={**os.environ, "LINKWELL_HTTP_PORT": str(port), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs[name] = proc
        for stream, target in ((proc.stdout, sys.stdout.buffer), (proc.stderr, sys.stderr.buffer)):
            threading.Thread(target=relay, args=(stream, target), daemon=True).start()

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for name in names:
        start(name)
    while not stopping:
        time.sleep(0.5)
        for name, proc in list(procs.items()):
            if proc.poll() is not None and not stopping:
                print(
                    f"linkwell: {name} exited with {proc.returncode}; restarting", file=sys.stderr
                )
                time.sleep(1)
                start(name)
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


@app.command(short_help="Exit 0 if this host's service is ready.")
def probe(
    live: Annotated[bool, typer.Option(help="Check /livez instead of /readyz.")] = False,
    port: Annotated[int | None, typer.Option(help="Default: LINKWELL_HTTP_PORT.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds.")] = 3.0,
) -> None:
    """Exit 0 if this host's service is ready (or alive). Containers use the cheaper
    `python -m services.ops.probe`, which does the same without importing the services."""
    from services.ops.probe import probe as check

    ok, text = check(live, port, timeout)
    typer.echo(text, err=not ok)
    raise typer.Exit(0 if ok else 1)


@app.command(short_help="Publish an envelope as its sender would.")
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    new_id: Annotated[bool, typer.Option(help="Give the envelope a fresh id first.")] = False,
    wait: Annotated[
        bool, typer.Option(help="Wait for the answer and print it (exit 1 if none comes).")
    ] = False,
    within: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 30.0,
) -> None:
    """Publish an envelope to <ns>.inbound as its sender would."""
    from services.ops.client import describe_answers, submit_and_wait

    settings = Settings()
    envelope = json.loads(file.read_text())
    if new_id:
        envelope["id"] = str(uuid.uuid4())
        envelope["time"] = datetime.now(UTC).isoformat()
    typer.echo(f"submitting {envelope['type']} id={envelope['id']} to {settings.names.inbound}")
    if not wait:
        asyncio.run(publish_inbound(settings, json.dumps(envelope).encode(), envelope["type"]))
        typer.echo("published; the answer goes to the sender's queue (--wait shows it here)")
        return
    got = asyncio.run(submit_and_wait(settings, envelope, within))
    ok, lines = describe_answers(got, within)
    for line in lines:
        typer.echo(line)
    raise typer.Exit(0 if ok else 1)


@app.command(short_help="Walk referrals through the running pipeline.")
def demo(
    within: Annotated[float, typer.Option(help="Seconds to wait for the pipeline.")] = 60.0,
) -> None:
    """Register a roster, submit referrals from several agencies (and some bad ones),
    record contacts, and show each referral's path. Needs the services running."""
    from services.ops.demo import run_demo

    configure("demo", os.environ.get("LINKWELL_LOG_LEVEL", "WARNING"))
    ok = asyncio.run(run_demo(Settings(), within))
    raise typer.Exit(0 if ok else 1)


def main() -> None:
    """``python -m services.ops.cli``: the same command as ``linkwell`` (services.ops.main)."""
    from services.ops.main import main as linkwell

    linkwell()


if __name__ == "__main__":
    main()
