"""``linkwell``: operate the pipeline.

linkwell migrate              apply every service's migrations
linkwell topology             declare exchanges and queues
linkwell run intake|...|all   run a service (all: each as its own process)
linkwell probe [--live]       exit 0 if the local service is ready (health checks)
linkwell submit FILE          publish an envelope to <ns>.inbound as an agency would
linkwell demo                 register a roster, submit referrals, show their paths
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer

from services.ops import access
from services.ops.access_cli import app as access_app
from services.ops.asyncapi_cli import app as asyncapi_app
from services.ops.client import publish_inbound
from services.ops.dlq_cli import app as dlq_app
from services.registry import SERVICE_DEFS
from services.runtime import topology as topo
from services.runtime.logs import configure
from services.runtime.runner import migrate as migrate_service
from services.runtime.runner import run as run_service
from services.runtime.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.add_typer(asyncapi_app, name="asyncapi")
app.add_typer(access_app, name="access")
app.add_typer(dlq_app, name="dlq")
docs_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Generated documentation.")
app.add_typer(docs_app, name="docs")


@docs_app.command("types")
def docs_types() -> None:
    """Print the README's table of event types, generated from the services' declarations."""
    from services.ops.catalogue import type_table

    typer.echo(type_table(), nl=False)


@app.command()
def migrate() -> None:
    """Apply each service's migrations to its own schema (idempotent, safe to run twice)."""
    settings = Settings()

    async def go() -> None:
        for name, service in SERVICE_DEFS.items():
            applied = await migrate_service(settings, service)
            typer.echo(f"{settings.names.schema(name)}: {', '.join(applied) or 'up to date'}")

    asyncio.run(go())


@app.command()
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


@app.command()
def run(
    service: Annotated[str, typer.Argument(help="intake, triage, notify, outcomes or all")],
) -> None:
    """Run one service in this process, or all four as separate child processes."""
    if service == "all":
        raise typer.Exit(supervise(list(SERVICE_DEFS)))
    if service not in SERVICE_DEFS:
        raise typer.BadParameter(f"choose one of {', '.join(SERVICE_DEFS)} or all")
    run_service(SERVICE_DEFS[service])


def supervise(names: list[str]) -> int:
    """Start each service as its own process; restart one that dies; stop all on a signal.
    Each serves health and metrics on its own port: LINKWELL_HTTP_PORT plus its index
    (intake 8080, triage 8081, notify 8082, outcomes 8083 by default)."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False
    base = Settings().http_port

    def start(name: str) -> None:
        port = base + list(SERVICE_DEFS).index(name) if base else 0
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "services.ops.cli", "run", name],
            env={**os.environ, "LINKWELL_HTTP_PORT": str(port)},
        )

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


@app.command()
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


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    new_id: Annotated[bool, typer.Option(help="Give the envelope a fresh id first.")] = False,
) -> None:
    """Publish a CloudEvents envelope to <ns>.inbound with its type as routing key."""
    settings = Settings()
    envelope = json.loads(file.read_text())
    if new_id:
        envelope["id"] = str(uuid.uuid4())
    asyncio.run(publish_inbound(settings, json.dumps(envelope).encode(), envelope["type"]))
    typer.echo(f"published {envelope['type']} id={envelope['id']} to {settings.names.inbound}")


@app.command()
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
    app()


if __name__ == "__main__":
    main()
